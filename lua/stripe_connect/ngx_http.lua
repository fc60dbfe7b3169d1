-- stripe_connect.ngx_http — an HTTP/1.1 client on nginx cosockets, with the
-- request/response shape of core.http_request, for the OAuth calls and the
-- stripe_connect.api client running inside nginx (lua-nginx-module).
--
--   request{ method=, url=, headers=, body=, timeout=, connect_timeout=,
--            max_size=, fresh_connect=, verify= }
--     -> { status=, headers={ lower-cased name = value, ["set-cookie"] = {…} }, body= }
--     |  nil, message, code  (timeout connect resolve tls reset too_large failed)
--
-- Written by hand (lua-resty-http is not a Debian package): it sends one
-- request and reads one answer (Content-Length, chunked, or up to the close),
-- never follows redirects and never resends.  The worker never blocks: every
-- connect, TLS handshake, send and receive yields the request to nginx's
-- event loop.  https verifies the certificate against the config's
-- lua_ssl_trusted_certificate, with SNI.  Connections go back to a
-- keep-alive pool (per host and port, 60 s idle, 32 each) when the answer
-- allows it; `fresh_connect = true` (the code exchange) takes a connection
-- of its own and closes it afterwards, so the request can never ride on a
-- pooled connection the server is closing.  As libcurl does, any other
-- request that fails on a reused keep-alive connection before a byte of the
-- answer arrived (the server closed it while idle) is sent once more on a new
-- connection; nothing else is ever resent.
-- lua-nginx-module's API table (a global it sets in every nginx Lua VM).
local ngx = rawget(_G, "ngx")

local M = {}

M.MAX_SIZE = 8 * 1024 * 1024 -- default body limit
M.POOL_SIZE, M.POOL_IDLE_MS = 32, 60000

local fresh_seq = 0

local function parse_url(url)
  local scheme, authority, path = url:match("^(%a[%w+.-]*)://([^/?#]+)(.*)$")
  if not scheme then return nil end
  scheme = scheme:lower()
  if scheme ~= "http" and scheme ~= "https" then return nil end
  local host, port = authority:match("^%[([%x:.]+)%]:?(%d*)$")
  if not host then host, port = authority:match("^([^:@]+):?(%d*)$") end
  if not host then return nil end
  port = tonumber(port) or (scheme == "https" and 443 or 80)
  if path == "" or path:sub(1, 1) == "?" then path = "/" .. path end
  return scheme, host, port, path:gsub("#.*$", "")
end

-- The code of a cosocket error message.
local function code_of(err, phase)
  err = tostring(err)
  if err:find("timeout", 1, true) then return "timeout" end
  if phase == "connect" then
    if err:find("resolve", 1, true) or err:find("host not found", 1, true) or err:find("resolver", 1, true) then
      return "resolve"
    end
    return "connect"
  end
  if phase == "tls" then return "tls" end
  if err:find("closed", 1, true) or err:find("reset", 1, true) or err:find("broken pipe", 1, true) then
    return "reset"
  end
  return "failed"
end

local function fail(sock, message, code)
  if sock then sock:close() end
  return nil, message, code
end

local function header_block(method, host, port, scheme, path, headers, body)
  local default_port = (scheme == "https" and port == 443) or (scheme == "http" and port == 80)
  local host_header = (host:find(":", 1, true) and ("[" .. host .. "]") or host) ..
    (default_port and "" or (":" .. port))
  local lines = { method .. " " .. path .. " HTTP/1.1", "Host: " .. host_header }
  local seen = {}
  for name, value in pairs(headers or {}) do
    if type(name) ~= "string" or not name:match("^[%w!#$%%&'*+.^_`|~-]+$") then
      error("http request: invalid header name '" .. tostring(name) .. "'", 3)
    end
    value = tostring(value)
    if value:find("[\r\n%z]") then error("http request: header '" .. name .. "' contains CR, LF or NUL", 3) end
    seen[name:lower()] = true
    lines[#lines + 1] = name .. ": " .. value
  end
  if body or method == "POST" or method == "PUT" or method == "PATCH" then
    lines[#lines + 1] = "Content-Length: " .. #(body or "")
  end
  if not seen["connection"] then lines[#lines + 1] = "Connection: keep-alive" end
  return table.concat(lines, "\r\n") .. "\r\n\r\n"
end

-- Reads the body as the headers say; -> body, close_after | nil, message, code
local function read_body(sock, method, status, h, max)
  if method == "HEAD" or status == 204 or status == 304 or (status >= 100 and status < 200) then
    return "", false
  end
  local te = h["transfer-encoding"]
  if te and te:lower():find("chunked", 1, true) then
    local parts, total = {}, 0
    while true do
      local line, err = sock:receive("*l")
      if not line then return nil, "reading a chunk: " .. tostring(err), code_of(err) end
      local size = tonumber(line:match("^%s*(%x+)"), 16)
      if not size then return nil, "malformed chunk size", "failed" end
      if size == 0 then
        repeat -- trailers up to the empty line
          line, err = sock:receive("*l")
          if not line then return nil, "reading trailers: " .. tostring(err), code_of(err) end
        until line == ""
        break
      end
      total = total + size
      if total > max then return nil, "response body over " .. max .. " bytes", "too_large" end
      local data, derr = sock:receive(size)
      if not data then return nil, "reading a chunk: " .. tostring(derr), code_of(derr) end
      parts[#parts + 1] = data
      local crlf, cerr = sock:receive(2)
      if crlf ~= "\r\n" then return nil, "malformed chunk end: " .. tostring(cerr), "failed" end
    end
    return table.concat(parts), false
  end
  local cl = h["content-length"]
  if cl then
    local n = tonumber(cl)
    if not n or n < 0 or n ~= math.floor(n) then return nil, "bad Content-Length", "failed" end
    if n > max then return nil, "response body over " .. max .. " bytes", "too_large" end
    if n == 0 then return "", false end
    local data, err = sock:receive(n)
    if not data then return nil, "reading the body: " .. tostring(err), code_of(err) end
    return data, false
  end
  -- no length: the body runs to the close
  local parts, total = {}, 0
  while true do
    local data, err = sock:receiveany(65536)
    if not data then
      if err == "closed" then break end
      return nil, "reading the body: " .. tostring(err), code_of(err)
    end
    total = total + #data
    if total > max then return nil, "response body over " .. max .. " bytes", "too_large" end
    parts[#parts + 1] = data
  end
  return table.concat(parts), true
end

-- open(r, scheme, host, port, new_connection, connect_ms, timeout_ms,
-- deadline) -> a connected socket (TLS done for https, the send and read
-- timeouts what is left before the deadline) | nil, message, code.  A
-- fresh connection has a pool of its own: never a reused one.
local function open(r, scheme, host, port, new_connection, connect_ms, timeout_ms, deadline)
  local sock = ngx.socket.tcp()
  sock:settimeouts(connect_ms, timeout_ms, timeout_ms)
  local pool = scheme .. "://" .. host .. ":" .. port
  if r.fresh_connect or new_connection then
    fresh_seq = fresh_seq + 1
    pool = pool .. "#fresh" .. ngx.worker.pid() .. "." .. fresh_seq -- a pool of its own: never a reused connection
  end
  local ok, err = sock:connect(host, port, { pool = pool })
  if not ok then return fail(sock, "connecting to " .. host .. ":" .. port .. ": " .. tostring(err), code_of(err, "connect")) end
  if scheme == "https" and sock:getreusedtimes() == 0 then
    local sess, serr = sock:sslhandshake(nil, host, r.verify ~= false)
    if not sess then return fail(sock, "TLS with " .. host .. ": " .. tostring(serr), code_of(serr, "tls")) end
  end
  local left = deadline - ngx.now() * 1000
  if left <= 0 then return fail(sock, "timed out", "timeout") end
  sock:settimeouts(connect_ms, left, left)
  return sock
end

-- read_headers(sock, headers, hbytes) -> headers (lower-cased names; a
-- repeated one joined with ", ", set-cookie a list) | nil, message, code
local function read_headers(sock, headers, hbytes)
  while true do
    local hl, herr = sock:receive("*l")
    if not hl then return fail(sock, "reading the headers: " .. tostring(herr), code_of(herr)) end
    if hl == "" then return headers end
    hbytes = hbytes + #hl
    if hbytes > 65536 then return fail(sock, "response headers over 64 KiB", "too_large") end
    local name, value = hl:match("^([^:%s]+):%s*(.-)%s*$")
    if not name then return fail(sock, "malformed header line", "failed") end
    name = name:lower()
    if name == "set-cookie" then
      local list = headers[name] or {}
      list[#list + 1] = value
      headers[name] = list
    elseif headers[name] then
      headers[name] = headers[name] .. ", " .. value
    else
      headers[name] = value
    end
  end
end

-- read_head(sock) -> { status, headers, line (the status line) } | nil,
-- message, code, stale (stale: the connection was reused and closed before
-- the status line).
local function read_head(sock)
  local line, lerr = sock:receive("*l")
  if not line then
    local stale = sock:getreusedtimes() > 0 and lerr == "closed"
    local m, c = select(2, fail(sock, "reading the status line: " .. tostring(lerr), code_of(lerr)))
    return nil, m, c, stale
  end
  local status = tonumber(line:match("^HTTP/1%.[01] (%d%d%d)"))
  if not status then return fail(sock, "malformed status line", "failed") end
  local headers, message, code = read_headers(sock, {}, #line)
  if not headers then return nil, message, code end
  return { status = status, headers = headers, line = line }
end

-- One try; -> response | nil, message, code, stale (stale: it failed on a
-- reused connection before any byte of the answer: safe to send again).
local function attempt(r, new_connection)
  assert(type(r) == "table", "http request: options table expected")
  local method = (r.method or "GET"):upper()
  local scheme, host, port, path = parse_url(r.url or "")
  if not scheme then return nil, "unsupported or malformed URL", "failed" end
  local timeout_ms = math.floor((r.timeout or 30) * 1000)
  local connect_ms = math.min(math.floor((r.connect_timeout or 10) * 1000), timeout_ms)
  local max = r.max_size or M.MAX_SIZE
  local deadline = ngx.now() * 1000 + timeout_ms

  local sock, message, code = open(r, scheme, host, port, new_connection, connect_ms, timeout_ms, deadline)
  if not sock then return nil, message, code end
  local head = header_block(method, host, port, scheme, path, r.headers, r.body)
  local reused = sock:getreusedtimes() > 0
  local sent, serr = sock:send(r.body and { head, r.body } or head)
  if not sent then
    local m, c = select(2, fail(sock, "sending the request: " .. tostring(serr), code_of(serr)))
    return nil, m, c, reused and c == "reset"
  end

  local answer, stale
  answer, message, code, stale = read_head(sock)
  if not answer then return nil, message, code, stale end
  local body, close_after
  body, close_after, code = read_body(sock, method, answer.status, answer.headers, max)
  if not body then return fail(sock, close_after, code) end
  local conn = (answer.headers["connection"] or ""):lower()
  if close_after or r.fresh_connect or new_connection or conn:find("close", 1, true) or answer.line:match("^HTTP/1%.0") then
    sock:close()
  else
    sock:setkeepalive(M.POOL_IDLE_MS, M.POOL_SIZE)
  end
  return { status = answer.status, headers = answer.headers, body = body }
end

-- request(r) -> response | nil, message, code (see the top of the file).
function M.request(r)
  local res, message, code, stale = attempt(r, false)
  if not res and stale and not r.fresh_connect then
    return attempt(r, true)
  end
  return res, message, code
end

return M
