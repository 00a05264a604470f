-- wrk script: read campaigns by id, picked at random from the ids in $HERALD_BENCH_IDS.
local ids = {}
for line in io.lines(os.getenv("HERALD_BENCH_IDS")) do ids[#ids + 1] = line end
wrk.headers["Authorization"] = "Bearer " .. os.getenv("HERALD_BENCH_TOKEN")
wrk.headers["orgid"] = "bench"

request = function()
  return wrk.format("GET", "/crm/marketing/campaigns/" .. ids[math.random(#ids)])
end

done = function(summary, latency, requests)
  io.write(string.format("BENCH requests=%d errors_status=%d p50_ms=%.2f p99_ms=%.2f rps=%.0f\n",
    summary.requests, summary.errors.status, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests / (summary.duration / 1e6)))
end
