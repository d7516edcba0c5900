--- queue_jobs.progress: the progress line on a terminal, redrawn in place at most 10 times a
-- second, of salad-jobs (docs/cli.md, "Progress") and of create_many's progress = true
-- (bulk.lua): "what: done/total unit, the counts, the rate, the ETA". Only when the stream is
-- a terminal (or `on` says so): a pipe or a file gets nothing from here. Below bulk and the
-- command line, it requires only the core.
local core = require "queue_jobs.core"
local compat = require "queue_jobs.compat"
local idiv = compat.idiv

local fmt, floor = string.format, math.floor

local Progress = {}
Progress.__index = Progress

--- duration(s) -> "42s", "3m07s", "2h05m".
local function duration(s)
  s = floor(s + 0.5)
  if s < 60 then return s .. "s" end
  if s < 3600 then return fmt("%dm%02ds", idiv(s, 60), s % 60) end
  return fmt("%dh%02dm", idiv(s, 3600), idiv(s % 3600, 60))
end
Progress.duration = duration

--- new{what, unit, stream, clock, on, started} -> a progress line, or one that draws nothing
-- when the stream (default io.stderr) is not a terminal (on: whether it draws, instead of
-- asking the stream). what: the command ("submit"); unit: what is counted ("lines", "jobs");
-- started: the clock's time the rate counts from (default: now).
function Progress.new(o)
  local stream = o.stream or io.stderr
  local on = o.on
  if on == nil then on = core.isatty(stream) end
  return setmetatable({ what = o.what, unit = o.unit, stream = stream, clock = o.clock,
    on = on, started = o.started or o.clock(), drawn = nil, shown = false }, Progress)
end

--- p:draw(done, total, parts [, final]): "submit: 500/1000 lines, 480 created, 2 failed,
-- 96.1/s, ETA 5s". total may be nil (then no ETA); parts: the counts after it, as
-- {"480 created", ...}. The rate counts done - p.free (items that cost nothing: lines a
-- journal had done already). Redrawn at most 10 times a second, and always when final (which
-- ends the line).
function Progress:draw(done, total, parts, final)
  if not self.on then return end
  local now = self.clock()
  if not final and self.drawn and now - self.drawn < 0.1 then return end
  self.drawn = now
  local secs = now - self.started
  local rate = secs > 0 and (done - (self.free or 0)) / secs or 0   -- free: done at no cost
  local text = fmt("%s: %d%s %s", self.what, done, total and ("/" .. total) or "", self.unit)
  for _, part in ipairs(parts) do text = text .. ", " .. part end
  text = text .. fmt(", %.1f/s", rate)
  if total and rate > 0 and done < total then
    text = text .. ", ETA " .. duration((total - done) / rate)
  elseif final then
    text = text .. ", " .. duration(secs)
  end
  self.stream:write("\r\27[K", text, final and "\n" or "")
  self.stream:flush()
  self.shown = not final
end

--- p:clear(): wipes a line drawn and not ended (before another message is written).
function Progress:clear()
  if self.on and self.shown then
    self.stream:write("\r\27[K")
    self.shown = false
  end
end

return Progress
