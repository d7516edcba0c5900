-- The key in memory: the header lists that hold "Salad-Api-Key: <key>" are wiped before they
-- are freed, for the blocking transfer and for every copy the engine makes of it. A child
-- process runs with a free() hook (LD_PRELOAD) that counts the blocks freed while they
-- still start with that header line. Pending under `make check`: ASan's allocator and an
-- LD_PRELOAD'ed free cannot both be loaded.
local helpers = require "support.helpers"

local KEY = "sk-wipe-SECRET-4d2c9a"

local HOOK = [[
#define _GNU_SOURCE
#include <malloc.h>
#include <stdio.h>
#include <string.h>
extern void __libc_free(void *);
static int unwiped;
void free(void *p) {
  static const char line[] = "Salad-Api-Key: ]] .. KEY .. [[";
  if (p != NULL && malloc_usable_size(p) >= sizeof line - 1 && memcmp(p, line, sizeof line - 1) == 0)
    unwiped++;
  __libc_free(p);
}
__attribute__((destructor)) static void report(void) {
  fprintf(stderr, "UNWIPED %d\n", unwiped);
}
]]

describe("the key's header lists", function()
  if os.getenv("QJ_SANITIZED") == "1" then
    pending("an LD_PRELOAD free() hook cannot run beside ASan's allocator (make test runs it)")
    return
  end

  it("are wiped before they are freed, blocking and on an engine", function()
    local emu = helpers.start_emulator { args = { "--api-key", KEY } }
    finally(function() emu:stop() end)
    local dir = os.tmpname()
    os.remove(dir)
    assert(helpers.shell("mkdir -p " .. helpers.shell_quote(dir)))
    finally(function() helpers.shell("rm -rf " .. helpers.shell_quote(dir)) end)
    helpers.write_file(dir .. "/hook.c", HOOK)
    local ok, out = helpers.shell("cc -shared -fPIC -o " .. helpers.shell_quote(dir .. "/hook.so") ..
      " " .. helpers.shell_quote(dir .. "/hook.c"))
    assert(ok, out)
    local script = ([[
      local qj = require "queue_jobs"
      local e = qj.engine()
      local c = assert(qj.client { api_key = %q, base_url = %q, organization_name = "acme-corp",
        project_name = "dev-env", rate_limit = false, engine = e })
      assert(c:create { queue_name = "q-1", input = 1 })          -- blocking
      local ts = {}
      for i = 1, 3 do ts[i] = e:spawn(function() return c:create { queue_name = "q-1", input = i } end) end
      e:loop()
      for i = 1, 3 do assert(ts[i]:result()) end
      c:close()
      e:close()
      collectgarbage()
      collectgarbage()
      os.exit(0, true)
    ]]):format(KEY, emu.url)
    local _, text, code = helpers.run({ helpers.LUA, "-e", script }, { stderr = true,
      env = { LUA_PATH = package.path, LUA_CPATH = package.cpath, LD_PRELOAD = dir .. "/hook.so" } })
    assert.are.equal(0, code, text)
    assert.are.equal(4, emu:counters().creates_accepted)
    assert.matches("UNWIPED 0\n", text)
  end)
end)
