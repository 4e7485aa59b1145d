-- GET /<code> over the seeded codes, in random order (cache hits once warmed).
package.path = debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua;" .. package.path
require("report").install()
require("pace").install()
local codes = require("codes").load()

function request()
   return wrk.format("GET", "/" .. codes[math.random(#codes)])
end
