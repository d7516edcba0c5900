-- busted output handler: the usual terminal output, then a plain closing line
-- "N passed, N failed" (", N skipped" when some are pending) that CI reads.
return function(options)
  local busted = require "busted"
  local handler = require "busted.outputHandlers.utfTerminal"(options)
  busted.subscribe({ "suite", "end" }, function()
    local failed = handler.failuresCount + handler.errorsCount
    local line = ("%d passed, %d failed"):format(handler.successesCount, failed)
    if handler.pendingsCount > 0 then line = line .. (", %d skipped"):format(handler.pendingsCount) end
    io.write(line, "\n")
    io.flush()
    return nil, true
  end)
  return handler
end
