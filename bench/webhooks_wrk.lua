-- bench/webhooks_wrk.lua — wrk script for bench/webhooks.sh: POSTs one signed
-- GitHub delivery to /hooks/github over and over, each request with its own
-- X-GitHub-Delivery (a header, not part of the signed body, so one signature
-- serves every request and a de-duplicating server sees each as new).
--
--   wrk -t2 -c32 -d10s -s bench/webhooks_wrk.lua URL -- BODY-FILE SIGNATURE RUN-ID
--
-- RUN-ID makes the delivery ids of one run differ from every other run's
-- against the same server: RUN-ID-THREAD-COUNTER.
--
-- done() prints one line for the script that runs wrk:
--   WRK requests=N duration_us=N status=N connect=N read=N write=N timeout=N
--       p50_us=N p99_us=N p999_us=N max_us=N mean_us=N
-- (latencies of completed requests in microseconds, from wrk's own histogram;
-- status = responses that were not 2xx or 3xx).

local threads = 0

function setup(thread)
    threads = threads + 1
    thread:set("tid", threads)
end

function init(args)
    local f = assert(io.open(args[1], "rb"))
    body = f:read("*a")
    f:close()
    prefix = string.format("%s-%d-", args[3], tid)
    n = 0
    headers = {
        ["Content-Type"] = "application/json",
        ["User-Agent"] = "GitHub-Hookshot/bench",
        ["X-GitHub-Event"] = "pull_request",
        ["X-GitHub-Hook-ID"] = "4242",
        ["X-GitHub-Hook-Installation-Target-Type"] = "repository",
        ["X-Hub-Signature-256"] = args[2],
    }
end

function request()
    n = n + 1
    headers["X-GitHub-Delivery"] = prefix .. n
    return wrk.format("POST", "/hooks/github", headers, body)
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "WRK requests=%d duration_us=%d status=%d connect=%d read=%d write=%d timeout=%d " ..
        "p50_us=%d p99_us=%d p999_us=%d max_us=%d mean_us=%.0f\n",
        summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
        latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max,
        latency.mean))
end
