-- The mix: 9 redirects (cache hits) to 1 create, drawn at random.
package.path = debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua;" .. package.path
require("report").install()
require("pace").install()
local codes = require("codes").load()

local CREATE_SHARE = 0.1
local headers = {["Content-Type"] = "application/json"}
local n = 0

function request()
   if math.random() < CREATE_SHARE then
      n = n + 1
      local body = string.format('{"url": "https://example.com/bench/%d/%d"}', math.random(1e9), n)
      return wrk.format("POST", "/shorten", headers, body)
   end
   return wrk.format("GET", "/" .. codes[math.random(#codes)])
end
