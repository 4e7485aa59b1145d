-- The seeded short codes, one per line in the file named by BENCH_CODES.
local codes = {}

function codes.load()
   local path = os.getenv("BENCH_CODES")
   assert(path, "BENCH_CODES is not set")
   local list = {}
   for line in io.lines(path) do
      list[#list + 1] = line
   end
   assert(#list > 0, "no codes in " .. path)
   return list
end

return codes
