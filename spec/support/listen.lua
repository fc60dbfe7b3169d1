-- support.listen — the start of a raw-socket test peer run as
-- `stripe-connect run SCRIPT PORTFILE …`: binds 127.0.0.1 on an ephemeral
-- port, writes the port to PORTFILE atomically (support.server.run_listener
-- waits for it) and gives up accepting after 60 s without a connection, so a
-- failed spec leaves nothing behind.  Returns the LuaSocket server.
local socket = require "socket"

return function(portfile)
  assert(portfile, "usage: SCRIPT PORTFILE …")
  local srv = assert(socket.bind("127.0.0.1", 0))
  local _, port = srv:getsockname()
  local f = assert(io.open(portfile .. ".tmp", "w"))
  f:write(port, "\n")
  f:close()
  os.rename(portfile .. ".tmp", portfile)
  srv:settimeout(60)
  return srv
end
