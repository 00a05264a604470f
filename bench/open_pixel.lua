-- wrk script: GET the tracking paths listed in $HERALD_BENCH_PATHS, round robin.
local paths = {}
for line in io.lines(os.getenv("HERALD_BENCH_PATHS")) do
  paths[#paths + 1] = line
end
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1], {["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) bench"})
end
done = function(summary, latency, requests)
  io.write(string.format("BENCH rate=%.0f req/s p50=%.2fms p99=%.2fms errors=%d non2xx=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, summary.errors.status))
end
