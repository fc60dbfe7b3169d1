-- Concurrency without blocking: 200 requests wait inside handlers (each
-- handler's outbound call is held by the upstream until the spec releases
-- it) while another route still answers; then all 200 complete correctly.
-- The same with --workers 1 and --workers 4.  200 clients at once come from
-- `curl --parallel`, in the background.  And clients that disconnect while
-- their handlers wait.
local lu = require "luaunit"
local core = require "stripe_connect.core"
local server = require "support.server"
local http = require "support.http"
local socket = require "socket"
local files = require "support.files"

local N = 200

local function suite(workers)
  local T = {}
  local front, upstream

  function T.setupClass()
    upstream = server.start{ app = "spec/support/apps/serve_upstream.lua", args = { "--workers", "1" } }
    front = server.start{ app = "spec/support/apps/serve_basic.lua",
                          args = { "--workers", tostring(workers) } }
  end

  function T.teardownClass()
    lu.assertEquals(front:stop(), 0)
    lu.assertEquals(upstream:stop(), 0)
  end

  function T.test_200_waiting_requests_do_not_block_the_worker()
    local group = "w" .. workers
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    local cfg = assert(io.open(dir .. "/curl.cfg", "w"))
    for i = 1, N do
      local inner = upstream.url .. "/hold?g=" .. group .. "&i=" .. i
      cfg:write(('url = "%s/proxy?url=%s"\noutput = "%s/%d"\n'):format(
        front.url, core.url_encode(inner), dir, i))
    end
    cfg:close()
    os.execute(("(curl -s --parallel --parallel-immediate --parallel-max %d -K %s/curl.cfg "
      .. "-w '%%{http_code}\\n' > %s/codes 2>&1; echo done > %s/done) &"):format(N, dir, dir, dir))

    -- all 200 are inside their handlers, waiting on the upstream …
    local held = server.poll(function()
      local res = http.get(upstream.url .. "/held?g=" .. group)
      return res and res.body == tostring(N)
    end, 30)
    lu.assertNotNil(held, "the upstream never saw " .. N .. " waiting requests")
    -- … and the front still answers another route, more than once
    for _ = 1, 3 do
      local res = assert(http.get(front.url .. "/hello?name=meanwhile"))
      lu.assertEquals(res.status, 200)
      lu.assertEquals(res.body, "hello meanwhile")
    end
    lu.assertNil(files.read(dir .. "/done"), "requests completed before the release")

    assert(http.request{ method = "POST", url = upstream.url .. "/release?g=" .. group })
    lu.assertNotNil(server.poll(function() return files.read(dir .. "/done") end, 30), "curl did not finish")
    local codes = files.read(dir .. "/codes")
    local ok = select(2, codes:gsub("200\n", ""))
    lu.assertEquals(ok, N, codes)
    for i = 1, N do
      local body = files.read(dir .. "/" .. i) or ""
      lu.assertStrContains(body, '"body":"released ' .. i .. '"')
    end
    os.execute("rm -rf " .. dir)
  end

  -- Clients that leave while their handlers wait on a held upstream: when
  -- the upstream answers, each resumed handler's response finds its client
  -- gone; the server stays healthy (and `make valgrind` runs the same).
  function T.test_clients_gone_while_their_handlers_wait()
    local group, n = "gone" .. workers, 20
    local clients = {}
    for i = 1, n do
      local c = assert(socket.connect("127.0.0.1", front.port))
      local inner = upstream.url .. "/hold?g=" .. group .. "&i=" .. i
      c:send("GET /proxy?url=" .. core.url_encode(inner) .. " HTTP/1.1\r\nHost: x\r\n\r\n")
      clients[i] = c
    end
    lu.assertNotNil(server.poll(function()
      local res = http.get(upstream.url .. "/held?g=" .. group)
      return res and res.body == tostring(n)
    end, 30), "the handlers never reached the upstream")
    for _, c in ipairs(clients) do c:close() end
    local function proxied()
      return select(2, front:log_text():gsub('path="/proxy" status=200', ""))
    end
    local before = proxied()
    assert(http.request{ method = "POST", url = upstream.url .. "/release?g=" .. group })
    local answered = server.poll(function() return proxied() >= before + n end, 30)
    lu.assertNotNil(answered, "not every handler finished:\n" .. front:log_text():sub(-2000))
    for _ = 1, 5 do
      local res = assert(http.get(front.url .. "/hello?name=after"))
      lu.assertEquals(res.body, "hello after")
    end
  end

  return T
end

return { TestServeConcurrencyOneWorker = suite(1), TestServeConcurrencyFourWorkers = suite(4) }
