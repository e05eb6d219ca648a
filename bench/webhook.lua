-- wrk script for the webhook load: the same POST to every server, a chat
-- message as the Botkit web client sends it, from 100 users in turn (one
-- user per request would make a session per request; one user in all would
-- make every request wait for the one before). The path comes from the URL
-- wrk is given: /botkit/receive for anywhere and nginx, /api/messages (its
-- only webhook) for Botkit.
local requests = {}
local n = 0

function init(args)
    for i = 1, 100 do
        local body = '{"type":"message","text":"hello from wrk, a typical short chat message",' ..
            '"user":"wrk-' .. i .. '","channel":"webhook"}'
        requests[i] = wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
    end
end

function request()
    n = n + 1
    return requests[(n % 100) + 1]
end

function done(summary, latency, requests)
    io.write(string.format('{"requests_per_s":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,' ..
        '"requests":%d,"errors":%d,"non2xx":%d}\n',
        summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1e3,
        latency:percentile(99) / 1e3, latency.max / 1e3, summary.requests,
        summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
        summary.errors.status))
end
