rockspec_format = "3.0"
package = "saladcloud-queue-jobs"
version = "scm-1"
source = {
  -- Built from a checkout: `luarocks make rockspec/saladcloud-queue-jobs-scm-1.rockspec`.
  url = "git+file://.",
}
description = {
  summary = "SaladCloud Job Queue client for Lua 5.3 and 5.4, in C on libcurl, with an exact JSON codec",
  detailed = [[
queue_jobs submits and manages jobs on SaladCloud's Job Queue API from Lua 5.3 and 5.4:
queue_jobs.create{...} turns a Lua table into JSON in C, posts it, and returns the created
job as a Lua table. Its JSON codec (queue_jobs.json) is exact: int64 digit for digit,
shortest round-trip floats, strict RFC 8259.
]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.3, < 5.5",
}
external_dependencies = {
  CURL = { header = "curl/curl.h", library = "curl" },
  OPENSSL = { header = "openssl/evp.h", library = "crypto" },
}
build = {
  type = "builtin",
  modules = {
    ["queue_jobs.core"] = {
      -- Every src/*.c, and below every lua/**/*.lua by its module name: spec/packaging_spec.lua
      -- checks both lists against the tree.
      sources = {
        "src/args.c",
        "src/buf.c",
        "src/clock.c",
        "src/core.c",
        "src/digest.c",
        "src/dtoa.c",
        "src/engine.c",
        "src/engine_epoll.c",
        "src/engine_lua.c",
        "src/engine_poll.c",
        "src/error.c",
        "src/fileio.c",
        "src/http.c",
        "src/json.c",
        "src/json_decode.c",
        "src/json_encode.c",
        "src/key_lua.c",
        "src/redact.c",
        "src/signal.c",
        "src/transfer.c",
        "src/utf8.c",
        "src/webhook.c",
        "src/webhook_lua.c",
      },
      libraries = { "curl", "crypto", "pthread" },
      incdirs = { "$(CURL_INCDIR)", "$(OPENSSL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)", "$(OPENSSL_LIBDIR)" },
    },
    queue_jobs = "lua/queue_jobs.lua",
    ["queue_jobs.attempt"] = "lua/queue_jobs/attempt.lua",
    ["queue_jobs.batch"] = "lua/queue_jobs/batch.lua",
    ["queue_jobs.outcome"] = "lua/queue_jobs/outcome.lua",
    ["queue_jobs.bulk"] = "lua/queue_jobs/bulk.lua",
    ["queue_jobs.cancel_many"] = "lua/queue_jobs/cancel_many.lua",
    ["queue_jobs.resubmit"] = "lua/queue_jobs/resubmit.lua",
    ["queue_jobs.client"] = "lua/queue_jobs/client.lua",
    ["queue_jobs.cli"] = "lua/queue_jobs/cli.lua",
    ["queue_jobs.cli.args"] = "lua/queue_jobs/cli/args.lua",
    ["queue_jobs.cli.jobs"] = "lua/queue_jobs/cli/jobs.lua",
    ["queue_jobs.cli.queues"] = "lua/queue_jobs/cli/queues.lua",
    ["queue_jobs.cli.jsonl"] = "lua/queue_jobs/cli/jsonl.lua",
    ["queue_jobs.cli.submit"] = "lua/queue_jobs/cli/submit.lua",
    ["queue_jobs.cli.resubmit"] = "lua/queue_jobs/cli/resubmit.lua",
    ["queue_jobs.constants"] = "lua/queue_jobs/constants.lua",
    ["queue_jobs.context"] = "lua/queue_jobs/context.lua",
    ["queue_jobs.default_clients"] = "lua/queue_jobs/default_clients.lua",
    ["queue_jobs.engine"] = "lua/queue_jobs/engine.lua",
    ["queue_jobs.errors"] = "lua/queue_jobs/errors.lua",
    ["queue_jobs.journal"] = "lua/queue_jobs/journal.lua",
    ["queue_jobs.options"] = "lua/queue_jobs/options.lua",
    ["queue_jobs.policy"] = "lua/queue_jobs/policy.lua",
    ["queue_jobs.progress"] = "lua/queue_jobs/progress.lua",
    ["queue_jobs.tracking"] = "lua/queue_jobs/tracking.lua",
    ["queue_jobs.validate"] = "lua/queue_jobs/validate.lua",
    ["queue_jobs.replay_guard"] = "lua/queue_jobs/replay_guard.lua",
    ["queue_jobs.webhook"] = "lua/queue_jobs/webhook.lua",
  },
  -- salad-jobs, the command line (docs/cli.md): LuaRocks wraps it in a launcher that runs it
  -- with the rock's Lua and module paths.
  install = { bin = { ["salad-jobs"] = "bin/salad-jobs" } },
  -- The LuaLS definition file, types/queue_jobs.lua, into the rock directory (README.md,
  -- "Editor types"); spec/types_spec.lua checks that it is listed.
  copy_directories = { "types" },
}
