-- wrk script for scripts/bench.sh.
--
--   BENCH_PATH   request target; an absolute URI ("http://127.0.0.1:8000/small")
--                makes wrk a forward-proxy client: point wrk's URL at the proxy,
--                and every request line carries the absolute URI the proxy forwards.
--   BENCH_HOST   Host header (default: taken from BENCH_PATH when absolute)
--   BENCH_CLOSE  "1": send "Connection: close", so every request is a new
--                connection (and, over https, a new full TLS handshake)
--
-- At the end it prints one JSON line (prefixed "BENCHJSON ") with the counts and
-- the latency percentiles, for the orchestrator to parse.

local path = os.getenv("BENCH_PATH")
local host = os.getenv("BENCH_HOST")
local close = os.getenv("BENCH_CLOSE")

if path ~= nil and path ~= "" then
   wrk.path = path
   if host == nil or host == "" then
      host = string.match(path, "^%a+://([^/]+)")
   end
end
if host ~= nil and host ~= "" then
   wrk.headers["Host"] = host
end
if close == "1" then
   wrk.headers["Connection"] = "close"
end

done = function(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
      '"lat_p50_ms":%.3f,"lat_p99_ms":%.3f,"lat_mean_ms":%.3f}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50) / 1000.0, latency:percentile(99) / 1000.0,
      latency.mean / 1000.0))
end
