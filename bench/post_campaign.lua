-- wrk script: create campaigns as fast as possible (each request makes a new campaign).
wrk.method = "POST"
wrk.body = '{"name":"Bench campaign","type":"one-shot","channels":["email","sms"],"audienceId":"aud-bench","templateId":"tpl-bench","status":"draft"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("HERALD_BENCH_TOKEN")
wrk.headers["orgid"] = "bench"

done = function(summary, latency, requests)
  io.write(string.format("BENCH requests=%d errors_status=%d p50_ms=%.2f p99_ms=%.2f rps=%.0f\n",
    summary.requests, summary.errors.status, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests / (summary.duration / 1e6)))
end
