-- wrk script of bench/receivers.py: every request is a different pre-signed delivery.
--
--   wrk -t1 -c8 -d8s -s presigned.lua http://127.0.0.1:PORT -- REQUESTS EXPECT
--
-- REQUESTS holds whole HTTP requests back to back, REQUESTS.index their sizes in bytes,
-- one a line; each is sent once, in order. A 2xx answer whose body lacks EXPECT, and
-- any other status, is counted as unexpected. Running out of requests is counted too
-- (the last one is sent again: a replay the receiver must refuse or answer as one).
-- done() prints one line, `BENCH {json}`, for the bench to read.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  requests = {}
  local data = assert(io.open(args[1], "rb")):read("*a")
  local at = 1
  for line in assert(io.open(args[1] .. ".index", "r")):lines() do
    local size = tonumber(line)
    requests[#requests + 1] = string.sub(data, at, at + size - 1)
    at = at + size
  end
  available = #requests
  expect = args[2]
  taken = 0
  unexpected = 0
  sample = ""
end

function request()
  taken = taken + 1
  if taken > available then
    return requests[available]
  end
  return requests[taken]
end

function response(status, headers, body)
  if status < 200 or status > 299 or not string.find(body or "", expect, 1, true) then
    unexpected = unexpected + 1
    if sample == "" then
      sample = status .. " " .. string.sub(body or "", 1, 300)
    end
  end
end

local function json_string(text)
  return '"' .. string.gsub(text, '[%c"\\]', function(c)
    return string.format("\\u%04x", string.byte(c))
  end) .. '"'
end

function done(summary, latency, _)
  local taken_all, available_all, unexpected_all, sample_all = 0, 0, 0, ""
  for _, thread in ipairs(threads) do
    taken_all = taken_all + thread:get("taken")
    available_all = available_all + thread:get("available")
    unexpected_all = unexpected_all + thread:get("unexpected")
    if sample_all == "" then
      sample_all = thread:get("sample")
    end
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, '
      .. '"timeout": %d, "status": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, '
      .. '"taken": %d, "available": %d, "unexpected": %d, "sample": %s}\n',
    summary.requests, summary.duration, errors.connect, errors.read, errors.write,
    errors.timeout, errors.status, latency:percentile(50), latency:percentile(99),
    latency.max, taken_all, available_all, unexpected_all, json_string(sample_all)
  ))
end
