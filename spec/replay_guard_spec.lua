-- queue_jobs.webhook.replay_guard: an id is "first" once within its ttl, the memory stays
-- within the capacity whatever comes, and a shared store is used as its contract says
-- (docs/webhooks.md, "Dropping replays"). Time is a fake clock throughout.
local qj = require "queue_jobs"
local webhook = qj.webhook

local function fake_clock(t)
  local clock = { now = t or 1000 }
  clock.fn = function() return clock.now end
  return clock
end

-- The entries of the guard's table of ids, counted one by one (not the guard's own count).
local function entries(guard)
  local n = 0
  for _ in pairs(guard._seen) do n = n + 1 end
  return n
end

describe("queue_jobs.webhook.replay_guard", function()
  it("says true the first time an id is seen, false for its replays", function()
    local guard = assert(webhook.replay_guard())
    assert.is_true(guard:first("msg_1"))
    assert.is_false(guard:first("msg_1"))
    assert.is_false(guard:first("msg_1"))
    assert.is_true(guard:first("msg_2"))
    assert.is_false(guard:first("msg_2"))
    assert.equal(2, guard:count())
  end)

  it("forgets an id once its ttl has passed, on a fake clock", function()
    local clock = fake_clock()
    local guard = assert(webhook.replay_guard { ttl = 600, clock = clock.fn })
    assert.is_true(guard:first("msg_a"))
    clock.now = clock.now + 300
    assert.is_true(guard:first("msg_b"))
    clock.now = clock.now + 299.5          -- msg_a seen 599.5 s ago
    assert.is_false(guard:first("msg_a"))
    clock.now = clock.now + 0.5            -- 600 s: forgotten
    assert.is_true(guard:first("msg_a"))
    assert.is_false(guard:first("msg_a"))  -- and remembered again from now
    assert.is_false(guard:first("msg_b"))  -- seen 300 s ago
    clock.now = clock.now + 300
    assert.is_true(guard:first("msg_b"))
    assert.equal(2, guard:count())
    assert.equal(2, entries(guard))
    assert.equal(0, guard.evicted)
  end)

  it("keeps the replay's first time: a replay does not extend the ttl", function()
    local clock = fake_clock()
    local guard = assert(webhook.replay_guard { ttl = 10, clock = clock.fn })
    assert.is_true(guard:first("x"))
    for _ = 1, 9 do
      clock.now = clock.now + 1
      assert.is_false(guard:first("x"))
    end
    clock.now = clock.now + 1
    assert.is_true(guard:first("x"))
  end)

  it("stays within its capacity under 100,000 ids, the oldest going first", function()
    local clock = fake_clock()
    local guard = assert(webhook.replay_guard { capacity = 10000, ttl = 600, clock = clock.fn })
    local most = 0
    for i = 1, 100000 do
      assert.is_true(guard:first("msg_" .. i))
      if i % 1000 == 0 then
        local n = entries(guard)
        if n > most then most = n end
        assert.equal(guard:count(), n)
      end
    end
    assert.equal(10000, most)
    assert.equal(10000, entries(guard))
    assert.equal(90000, guard.evicted)
    -- the last 10,000 are remembered, the ones before them were pushed out
    assert.is_false(guard:first("msg_100000"))
    assert.is_false(guard:first("msg_90001"))
    assert.is_true(guard:first("msg_90000"))
    assert.equal(10000, entries(guard))
    -- and so is the ring beside the table: no slot past the capacity was ever used
    assert.is_nil(next(guard._ring, 10000))
  end)

  it("drops expired ids before evicting live ones", function()
    local clock = fake_clock()
    local guard = assert(webhook.replay_guard { capacity = 3, ttl = 5, clock = clock.fn })
    for _, id in ipairs { "a", "b", "c" } do assert.is_true(guard:first(id)) end
    clock.now = clock.now + 5
    assert.is_true(guard:first("d"))
    assert.equal(1, guard:count())
    assert.equal(0, guard.evicted)
    assert.is_true(guard:first("a"))
    assert.is_false(guard:first("d"))
  end)

  it("uses a shared store instead of its memory, as the contract says", function()
    local cache, calls = {}, {}
    local store = {
      get = function(id)
        calls[#calls + 1] = "get " .. id
        return cache[id] ~= nil
      end,
      set = function(id, ttl)
        calls[#calls + 1] = ("set %s %g"):format(id, ttl)
        if cache[id] then return false end   -- set-if-absent: another receiver was first
        cache[id] = true
        return true
      end,
    }
    local guard = assert(webhook.replay_guard { store = store, ttl = 120 })
    assert.is_true(guard:first("msg_1"))
    assert.is_false(guard:first("msg_1"))
    assert.same({ "get msg_1", "set msg_1 120", "get msg_1" }, calls)
    assert.equal(0, guard:count())
    -- another receiver set it between our get and our set: not first
    local racing = assert(webhook.replay_guard { store = { get = function() return nil end,
      set = store.set } })
    assert.is_false(racing:first("msg_1"))
    -- a store that fails: the error goes up, never a "first"
    local broken = assert(webhook.replay_guard { store = { get = function() error("cache down") end,
      set = store.set } })
    assert.has_error(function() broken:first("msg_2") end)
    assert.is_nil(cache.msg_2)
  end)

  it("refuses bad options as invalid_argument, and raises on misuse", function()
    for _, case in ipairs {
      { { capacity = 0 }, "capacity" }, { { capacity = 1.5 }, "capacity" },
      { { capacity = "10" }, "capacity" }, { { ttl = 0 }, "ttl" }, { { ttl = -1 }, "ttl" },
      { { ttl = 0 / 0 }, "ttl" }, { { store = {} }, "store" }, { { clock = 5 }, "clock" },
      { { capcity = 5 }, "capcity" },
    } do
      local guard, err = webhook.replay_guard(case[1])
      assert.is_nil(guard)
      assert.equal("invalid_argument", err.kind)
      assert.equal(case[2], err.path)
      assert.matches("^webhook%.replay_guard: " .. case[2], err.message)
    end
    assert.has_error(function() webhook.replay_guard(10) end,
      "bad argument #1 to 'replay_guard' (table or nil expected, got number)")
    local guard = assert(webhook.replay_guard { capacity = 2 })
    assert.has_error(function() guard:first(nil) end,
      "bad argument #1 to 'first' (a webhook-id expected, got nil)")
    assert.has_error(function() guard:first("") end,
      "bad argument #1 to 'first' (a webhook-id expected, got an empty string)")
  end)
end)
