-- queue_jobs.compat's coroutine parts, the same on every Lua: compat.pcall lets its function
-- yield (on PUC 5.1 through a coroutine of its own), compat.running names the coroutine it
-- was called in, and compat.isyieldable says where a yield would fail.
local compat = require "queue_jobs.compat"

local cpcall, running, yieldable = compat.pcall, compat.running, compat.isyieldable

-- Runs fn in a coroutine, resuming it with what reply(yielded values...) gives until it ends;
-- returns the list of what it yielded and what it returned (resume's ok first).
local function drive(fn, reply)
  local co = coroutine.create(fn)
  local yields = {}
  local r = compat.pack(coroutine.resume(co))
  while coroutine.status(co) == "suspended" do
    yields[#yields + 1] = { compat.unpack(r, 2, r.n) }
    r = compat.pack(coroutine.resume(co, reply(compat.unpack(r, 2, r.n))))
  end
  return yields, r, co
end

describe("compat.pcall", function()
  it("is the built-in pcall where that lets its function yield (5.2 on and LuaJIT)", function()
    -- (PUC 5.1 raises inside pcall, which catches it: the coroutine ends, never suspended)
    local co = coroutine.create(function() pcall(coroutine.yield) end)
    coroutine.resume(co)
    assert.equal(coroutine.status(co) == "suspended", compat.YIELDING_PCALL)
    if compat.YIELDING_PCALL then assert.equal(pcall, cpcall) end
  end)

  it("passes a yield out to the caller's coroutine and the answer back in", function()
    local yields, r = drive(function()
      return cpcall(function(a, b)
        local x, y = coroutine.yield("first", a + b)
        local z = coroutine.yield("second", x .. y)
        return z, nil, "end"
      end, 1, 2)
    end, function(what, v) return what .. ":" .. v, "!" end)
    assert.same({ { "first", 3 }, { "second", "first:3!" } }, yields)
    assert.same({ n = 5, true, true, "second:first:3!", nil, "end" }, r)
  end)

  it("returns false and the error value as raised: a string with its position, a table as it is", function()
    local e = {}
    local _, r = drive(function()
      local ok1, err1 = cpcall(function() coroutine.yield() error("boom") end)
      local ok2, err2 = cpcall(function() coroutine.yield() error(e) end)
      local ok3, err3 = cpcall(function() error("no position", 0) end)
      local ok4, err4 = cpcall(function() error() end)
      return ok1, err1, ok2, err2, ok3, err3, ok4, err4
    end, function() end)
    assert.is_true(r[1])
    assert.is_false(r[2])
    assert.matches("^spec/compat_spec%.lua:%d+: boom$", r[3])
    assert.is_false(r[4])
    assert.equal(e, r[5])
    assert.same({ false, "no position", false }, { r[6], r[7], r[8] })
    assert.is_nil(r[9])
  end)

  it("nests: an inner call's yield goes out through both, its error stops at the inner one", function()
    local yields, r = drive(function()
      return cpcall(function()
        local ok, err = cpcall(function()
          assert.equal("back", coroutine.yield("deep"))
          error("inner", 0)
        end)
        return ok, err, coroutine.yield("outer")
      end)
    end, function(what) return what == "deep" and "back" or "again" end)
    assert.same({ { "deep" }, { "outer" } }, yields)
    assert.same({ n = 4, true, true, false, "inner" }, { n = 4, r[1], r[2], r[3], r[4] })
    assert.equal("again", r[5])
  end)

  it("calls what the built-in pcall calls: C functions, callable tables, and not a nil", function()
    local _, r = drive(function()
      local callable = setmetatable({}, { __call = function(self, a) coroutine.yield() return self, a end })
      local t = { cpcall(callable, 7) }
      local ok, err = cpcall(nil)
      local c = { cpcall(select, "#", 1, 2) }
      return t, ok, err, c, cpcall(error, "from C", 0)
    end, function() end)
    assert.is_true(r[1])
    assert.equal(true, r[2][1])
    assert.equal(7, r[2][3])
    assert.is_false(r[3])
    assert.matches("attempt to call a nil value", r[4])
    assert.same({ true, 2 }, r[5])
    assert.same({ false, "from C" }, { r[6], r[7] })
  end)

  it("in the main coroutine, is a plain pcall (nothing there can yield)", function()
    assert.same({ true, 1, 2 }, { cpcall(function() return 1, 2 end) })
    local ok, err = cpcall(coroutine.yield)
    assert.is_false(ok)
    assert.matches("yield", err)
  end)
end)

describe("compat.running", function()
  it("names the coroutine compat.pcall was called in, however deep, and the main one apart", function()
    local main, is_main = running()
    assert.is_true(is_main)
    assert.equal(main, (running()))
    local _, r, co = drive(function()
      local here = running()
      local inner = select(2, cpcall(function() return select(2, cpcall(running)) end))
      return here, inner, select(2, running())
    end, function() end)
    assert.equal(co, r[2])
    assert.equal(co, r[3])
    assert.is_false(r[4])
  end)
end)

describe("compat.isyieldable", function()
  it("is false in the main coroutine, true in a coroutine and inside compat.pcall there", function()
    assert.is_false(yieldable())
    local _, r = drive(function()
      return yieldable(), select(2, cpcall(function() return select(2, cpcall(yieldable)) end))
    end, function() end)
    assert.same({ n = 3, true, true, true }, r)
  end)

  it("is false where a yield would fail on this Lua, and true where it works", function()
    -- (a generic for's iterator, a metamethod, a table.sort comparator, compat.pcall and
    -- pcall in a coroutine, and a plain call: each case in its own coroutine, whose yield
    -- either comes out or fails)
    local cases = {
      function(probe)
        for _ in function(_, done)
          if done then return nil end
          local v = probe()   -- (not a tail call: that would hide the iterator's frame on 5.1)
          return v
        end do end
      end,
      function(probe)
        local t = setmetatable({}, { __index = function() probe() return 1 end })
        return t.x
      end,
      function(probe) table.sort({ 2, 1 }, function(a, b) probe() return a < b end) end,
      function(probe) cpcall(function() cpcall(probe) end) end,
      function(probe) local ok = pcall(probe) return ok end,
      function(probe) return (probe()) end,
    }
    local said = {}
    for i, case in ipairs(cases) do
      local co = coroutine.create(case)
      local ok, what = coroutine.resume(co, function()
        said[i] = yieldable()
        coroutine.yield("came out")
        return true
      end)
      local yielded = ok and what == "came out"
      assert(yielded or not ok or said[i] == false, i)   -- (pcall's yield failed inside it)
      assert.equal(yielded, said[i], "case " .. i)
    end
    assert.is_true(said[4])
    assert.is_true(said[6])
  end)
end)
