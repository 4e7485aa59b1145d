-- Hold the load at BENCH_RATE requests/s (per wrk thread), when it is set.
--
-- Debian's wrk has no constant-rate mode (wrk2's -R). Here every request claims the next
-- slot of a Poisson schedule (exponential gaps, mean 1/rate) and waits for it: the rate
-- holds whatever the latency, until the connections are all busy. Latency is wrk's, from
-- the moment the request is written.
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *now);
]]

local CLOCK_MONOTONIC = 1
local pace = {}
local now_buffer = ffi.new("bench_timespec")
local rate = tonumber(os.getenv("BENCH_RATE") or "")
local next_slot = nil

local function now_ms()
   ffi.C.clock_gettime(CLOCK_MONOTONIC, now_buffer)
   return tonumber(now_buffer.tv_sec) * 1000 + tonumber(now_buffer.tv_nsec) / 1e6
end

function pace.delay()
   local now = now_ms()
   next_slot = (next_slot or now) + -1000 / rate * math.log(1 - math.random())
   -- wrk truncates the delay to whole milliseconds: +0.5 rounds it instead.
   return math.max(next_slot - now, 0) + 0.5
end

function pace.install()
   if rate then
      delay = pace.delay
   end
end

return pace
