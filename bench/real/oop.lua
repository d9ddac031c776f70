-- Closures, metatables and method calls: a small class hierarchy of shapes
-- and accumulators made of closures.
local Shape = {}
Shape.__index = Shape
function Shape.new(kind, a, b) return setmetatable({kind = kind, a = a, b = b}, Shape) end
function Shape:area() return 0 end
local Rect = setmetatable({}, {__index = Shape})
Rect.__index = Rect
function Rect.new(a, b) return setmetatable(Shape.new("rect", a, b), Rect) end
function Rect:area() return self.a * self.b end
local Circle = setmetatable({}, {__index = Shape})
Circle.__index = Circle
function Circle.new(r) return setmetatable(Shape.new("circle", r, r), Circle) end
function Circle:area() return 3 * self.a * self.a end

local function counter(step)
  local n = 0
  return function() n = n + step; return n end
end

local rounds = tonumber(arg[1]) or 50
local sum, calls = 0, 0
for r = 1, rounds do
  local shapes = {}
  for i = 1, 10000 do
    if i % 3 == 0 then shapes[i] = Circle.new(i % 17) else shapes[i] = Rect.new(i % 13, r % 7 + 1) end
  end
  local tick = counter(r)
  for _, s in ipairs(shapes) do
    sum = (sum + s:area() + tick()) % 1000000007
  end
  local fs = {}
  for i = 1, 1000 do fs[i] = counter(i) end
  for k = 1, 10 do
    for i = 1, 1000 do calls = calls + fs[i]() % 7 end
  end
end
print(string.format("oop: rounds %d sum %d calls %d", rounds, sum, calls))
