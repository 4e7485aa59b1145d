-- POST /shorten with a distinct target URL each time.
package.path = debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua;" .. package.path
require("report").install()
require("pace").install()

local headers = {["Content-Type"] = "application/json"}
local n = 0

function request()
   n = n + 1
   local body = string.format('{"url": "https://example.com/bench/%d/%d"}', math.random(1e9), n)
   return wrk.format("POST", "/shorten", headers, body)
end
