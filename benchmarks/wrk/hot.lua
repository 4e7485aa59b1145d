-- GET /<code> on one seeded code only: every request on the same link (a link gone viral).
package.path = debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua;" .. package.path
require("report").install()
require("pace").install()
local hot = require("codes").load()[1]

function request()
   return wrk.format("GET", "/" .. hot)
end
