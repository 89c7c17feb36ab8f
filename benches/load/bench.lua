-- wrk script shared by every load scenario: optional random 64 KiB ranges, and one
-- machine-readable summary line for run.py (wrk's own report rounds its units).
--   RANGE_OBJECT_SIZE  object size in bytes; when set, each request asks a random range
--   RANGE_LEN          range length in bytes (default 65536)

local object_size = tonumber(os.getenv("RANGE_OBJECT_SIZE") or "")
local range_len = tonumber(os.getenv("RANGE_LEN") or "65536")
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("id", next_id)
end

function init(args)
  math.randomseed(os.time() * 1000 + (id or 0))
end

if object_size then
  request = function()
    -- 64 KiB-aligned random offsets, as a video player seeking would ask.
    local slots = math.floor(object_size / range_len)
    local start = math.random(0, slots - 1) * range_len
    wrk.headers["Range"] = string.format("bytes=%d-%d", start, start + range_len - 1)
    return wrk.format()
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK requests=%d duration_us=%d bytes=%d p50_us=%d p99_us=%d " ..
    "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
