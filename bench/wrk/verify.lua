-- wrk script for GET /api/v1/verify, cycling over real unit codes with a random client_id per request.
--
--   wrk -t1 -c32 -d10s -s bench/wrk/verify.lua http://127.0.0.1:PORT -- CODES_FILE [START] [RATE]
--
-- CODES_FILE: one URL-encoded code per line. START: index of the first code (so that successive
-- runs against one server keep reaching codes it has not seen). RATE: if given and > 0, requests
-- per second for each wrk thread, sent on a fixed schedule (slot k at t0 + k/RATE) through wrk's
-- delay() hook: an open-loop load as long as some connection is free when a slot comes up (wrk2 is
-- not packaged in Debian). Latency is measured from the moment the request is written.
-- done() prints one line "JSON {...}" with the figures, non-2xx answers and the verdicts seen.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

local codes = {}
local idx = 0
non2xx = 0

function init(args)
  local path = args[1]
  local start = tonumber(args[2] or "0")
  local rate = tonumber(args[3] or "0")
  for line in io.lines(path) do
    if #line > 0 then codes[#codes + 1] = line end
  end
  local tid = tonumber(tid or 0)
  -- threads start a share of the list apart, so they do not repeat each other's codes
  idx = (start + tid * math.floor(#codes / 8)) % #codes
  math.randomseed(os.time() * 1000 + tid * 7919 + start)
  if rate > 0 then
    local interval = 1000.0 / rate
    local t0 = nil
    local k = 0
    delay = function()
      local t = now_ms()
      if t0 == nil then t0 = t end
      local slot = t0 + k * interval
      k = k + 1
      if slot > t then return math.floor(slot - t) end
      return 0
    end
  end
end

function request()
  idx = idx % #codes + 1
  local client = string.format("%08x%08x", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
  return wrk.format("GET", "/api/v1/verify?code=" .. codes[idx] .. "&client_id=" .. client)
end

local VERDICTS = {"genuine", "counterfeit", "suspect", "recalled", "expired", "unknown", "unverifiable",
                  "unreadable", "other"}
for _, name in ipairs(VERDICTS) do _G["verdict_" .. name] = 0 end

function response(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
  local v = string.match(body, '"verdict":%s*"(%a+)"')
  local key = "verdict_" .. (v or "other")
  if _G[key] == nil then key = "verdict_other" end
  _G[key] = _G[key] + 1
end

function done(summary, latency, requests)
  local bad = 0
  local seen = {}
  for _, thread in ipairs(threads) do
    bad = bad + (thread:get("non2xx") or 0)
    for _, name in ipairs(VERDICTS) do
      seen[name] = (seen[name] or 0) + (thread:get("verdict_" .. name) or 0)
    end
  end
  local vparts = {}
  for name, count in pairs(seen) do
    if count > 0 then vparts[#vparts + 1] = string.format('"%s":%d', name, count) end
  end
  local e = summary.errors
  io.write(string.format(
    'JSON {"requests":%d,"duration_us":%d,"bytes":%d,"errors":{"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d},"non2xx":%d,"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,' ..
    '"max":%d,"mean":%.1f},"verdicts":{%s}}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    bad, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean, table.concat(vparts, ",")))
end
