//! Where the test suite finds its Python tools.

/// The Python tools of the test suite (schemathesis, openapi-spec-validator): the venv `.ci/run`
/// makes, at `HERALD_PY_VENV` or `~/.cache/herald/venv`.
pub fn venv() -> std::path::PathBuf {
    match std::env::var_os("HERALD_PY_VENV") {
        Some(dir) => dir.into(),
        None => std::path::Path::new(&std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/herald/venv"),
    }
}

/// A tool of the venv; a missing one fails the test, saying how to install it.
pub fn venv_tool(name: &str) -> std::path::PathBuf {
    let path = venv().join("bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run .ci/run once, or `python3 -m venv {dir} && {dir}/bin/pip install \
         -r .ci/python-requirements.txt` (see README)",
        path.display(),
        dir = venv().display()
    );
    path
}
