//! Schemathesis (issue 15, point 11) against a live server on each database: requests generated
//! from `/openapi.json`, with the checks that no answer is a server error, that every answer
//! matches the schema and the content type the document gives for its status. A short budget
//! here; `bench/fuzz.sh` runs a longer one. Schemathesis comes from the venv `.ci/run` installs
//! (`tests/api/venv.rs`); without it this test fails, saying how to install it.

use crate::db_test;
use crate::helpers::TestApp;
use crate::venv::venv_tool;

/// Seconds of fuzzing per database.
const BUDGET_SECONDS: u32 = 40;

db_test!(
    schemathesis_finds_no_server_error_and_no_answer_off_its_schema,
    |app: TestApp| async move {
        let schemathesis = venv_tool("schemathesis");
        let out = tokio::process::Command::new(schemathesis)
            // Its example database and reports stay out of the repository.
            .current_dir(&app.data_dir)
            .args(["run", &app.url("/openapi.json"), "--url", &app.address])
            .args([
                "--checks",
                "not_a_server_error,response_schema_conformance,content_type_conformance",
            ])
            .args([
                "--max-time",
                &BUDGET_SECONDS.to_string(),
                "--max-examples",
                "20",
            ])
            .args(["--generation-database", "none", "--no-color"])
            .args(["-H", &format!("Authorization: Bearer {}", app.admin)])
            .args(["-H", "orgid: acme"])
            .output()
            .await
            .expect("run schemathesis");
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "schemathesis found failures:\n{said}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // It ran: every operation of the document was tested.
        assert!(said.contains("Tested:"), "{said}");
    }
);
