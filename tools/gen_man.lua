-- Writes salad-jobs(1) on stdout, from salad-jobs' help texts (lua/queue_jobs/cli/man.lua).
-- Run by `make man` with the checkout's module paths.
io.stdout:write(require("queue_jobs.cli.man").page(require "queue_jobs.cli"))
