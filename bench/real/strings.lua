-- String building, formatting, gsub and find: rounds from the command line.
local rounds = tonumber(arg[1]) or 20
local words = {"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"}
local total, hash = 0, 0
for r = 1, rounds do
  local parts = {}
  for i = 1, 20000 do
    parts[#parts + 1] = string.format("%s-%d:%s", words[(i * 7 + r) % #words + 1], i, words[i % #words + 1])
  end
  local s = table.concat(parts, " ")
  local t, n = s:gsub("(%a+)%-(%d+)", "%2=%1")
  total = total + n + #t
  local upper = t:gsub("[aeiou]", string.upper)
  local count = 0
  for _ in upper:gmatch("%u%l+") do count = count + 1 end
  local pos, hits = 1, 0
  while true do
    local a, b = string.find(upper, "hOtEl", pos, true)
    if not a then break end
    hits, pos = hits + 1, b + 1
  end
  hash = (hash * 31 + count + hits + #upper:rep(2, ",")) % 1000000007
end
print(string.format("strings: rounds %d total %d hash %d", rounds, total, hash))
