-- table.sort on numbers, on strings and with a comparison function.
local n = tonumber(arg[1]) or 200000
local seed = 12345
local function rand()
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed
end
local nums, strs, recs = {}, {}, {}
for i = 1, n do
  local v = rand()
  nums[i] = v
  strs[i] = string.format("k%08x", v)
  recs[i] = {key = v % 1000, id = i}
end
table.sort(nums)
table.sort(strs)
table.sort(recs, function(a, b)
  if a.key ~= b.key then return a.key < b.key end
  return a.id < b.id
end)
local check = 0
for i = 1, n, 97 do
  check = (check + nums[i] % 1000 + #strs[i] + recs[i].id) % 1000000007
end
print(string.format("sort: n %d first %d last %d %s %s check %d", n, nums[1], nums[n], strs[1], strs[n], check))
