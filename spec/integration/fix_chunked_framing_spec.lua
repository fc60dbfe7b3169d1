-- Issue 13, findings 1 and 2: chunked framing.
--   1. After a chunk size, only RFC 9112 §7.1.1 chunk extensions
--      (*( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] )) are
--      taken; CRLF ends every line (a bare LF, as in the probe, is 400 and
--      close); trailer fields are checked like header fields.
--   2. Transfer-Encoding: chunked on HTTP/1.0 is faulty framing (§6.1): 400
--      and close, whatever Connection says.
local lu = require "luaunit"
local cjson = require "cjson"
local server = require "support.server"
local raw = require "support.raw_http"

local APP = "spec/support/apps/serve_basic.lua"
local HEAD = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"

local TestFixChunkedFraming = {}
local s

function TestFixChunkedFraming.setupClass()
  s = server.start{ app = APP, args = { "--workers", "1" } }
end

function TestFixChunkedFraming.teardownClass()
  lu.assertEquals(s:stop(), 0)
end

local function refused(data, status, what)
  local got, headers, _, c = raw.exchange(s.port, data)
  lu.assertEquals(got, status, what)
  lu.assertEquals(headers.connection, "close", what)
  lu.assertTrue(raw.closed(c), what .. ": connection left open")
  c:close()
end

-- The issue's probe: "27;\n" then 39 bytes.  A proxy ending lines at the
-- bare LF reads a 0x27-byte chunk that hides a second request; we read one
-- request, so we must refuse it.
function TestFixChunkedFraming.test_probe_bare_lf_after_chunk_extension()
  local hidden = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
  local probe = HEAD .. "27;\n" .. hidden .. ("z"):rep(39 - #hidden) .. "\r\n0\r\n\r\n"
  local status, headers, _, c = raw.exchange(s.port, probe)
  lu.assertEquals(status, 400)
  lu.assertEquals(headers.connection, "close")
  lu.assertTrue(raw.closed(c), "one 400, then close: nothing of the hidden request answered")
  c:close()
  lu.assertNotStrContains(s:log_text(), 'path="/hello"')
end

function TestFixChunkedFraming.test_bad_chunk_lines()
  local rows = {
    { "bare LF after the size", "5\nhello\r\n0\r\n\r\n" },
    { "bare CR in an extension", "5;a\rb\r\nhello\r\n0\r\n\r\n" },
    { "NUL in an extension", "5;a\0\r\nhello\r\n0\r\n\r\n" },
    { "';' without a name", "5;\r\nhello\r\n0\r\n\r\n" },
    { "name not a token", "5;a@b\r\nhello\r\n0\r\n\r\n" },
    { "'=' without a value", "5;a=\r\nhello\r\n0\r\n\r\n" },
    { "value not a token", "5;a=b@c\r\nhello\r\n0\r\n\r\n" },
    { "unterminated quoted-string", '5;a="b\r\nhello\r\n0\r\n\r\n' },
    { "control in a quoted-string", '5;a="b\1"\r\nhello\r\n0\r\n\r\n' },
    { "trailing whitespace after the size", "5 \r\nhello\r\n0\r\n\r\n" },
    { "junk after the size", "5 x\r\nhello\r\n0\r\n\r\n" },
    { "bare LF on the last chunk", "5\r\nhello\r\n0\n\r\n" },
    { "bare LF after the data", "5\r\nhello\n0\r\n\r\n" },
  }
  for _, r in ipairs(rows) do refused(HEAD .. r[2], 400, r[1]) end
end

function TestFixChunkedFraming.test_extensions_by_the_grammar_are_ignored()
  local rows = {
    { "a name", "5;a\r\nhello\r\n0\r\n\r\n" },
    { "name=token", "5;a=b\r\nhello\r\n0;last=1\r\n\r\n" },
    { "BWS around ';' and '='", "5 ;\ta = b ; c\r\nhello\r\n0\r\n\r\n" },
    { "a quoted-string with a quoted-pair", '5;a="b \\" ; c"\r\nhello\r\n0\r\n\r\n' },
    { "several", "5;a=1;b;c=\"x\"\r\nhello\r\n0\r\n\r\n" },
  }
  for _, r in ipairs(rows) do
    local status, _, body, c = raw.exchange(s.port, HEAD .. r[2])
    lu.assertEquals(status, 200, r[1])
    lu.assertEquals(cjson.decode(body).body, "hello", r[1])
    c:close()
  end
end

function TestFixChunkedFraming.test_trailer_fields_checked_like_header_fields()
  local rows = {
    { "no colon", "bad trailer\r\n" },
    { "space before the colon", "X-T : 1\r\n" },
    { "name not a token", "X(T): 1\r\n" },
    { "bare LF in a value", "X-T: a\nb\r\n" },
    { "bare CR in a value", "X-T: a\rb\r\n" },
    { "NUL in a value", "X-T: a\0b\r\n" },
    { "obsolete line folding", "X-T: a\r\n b\r\n" },
  }
  for _, r in ipairs(rows) do refused(HEAD .. "5\r\nhello\r\n0\r\n" .. r[2] .. "\r\n", 400, r[1]) end
  -- well-formed trailer fields pass (and are discarded), keep-alive goes on
  local status, _, body, c = raw.exchange(s.port, HEAD .. "5\r\nhello\r\n0\r\nX-A: 1\r\nX-B:\r\n\r\n")
  lu.assertEquals(status, 200)
  lu.assertEquals(cjson.decode(body).body, "hello")
  c:send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
  lu.assertEquals((raw.read_response(c)), 200)
  c:close()
end

function TestFixChunkedFraming.test_chunked_on_http_1_0_is_faulty_framing()
  refused("POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
    .. "5\r\nhello\r\n0\r\n\r\n", 400, "HTTP/1.0 + chunked, keep-alive asked")
  refused("POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400,
    "HTTP/1.0 + chunked")
  -- HTTP/1.0 with a Content-Length body still works
  local status, _, body, c = raw.exchange(s.port, "POST /echo HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello")
  lu.assertEquals(status, 200)
  lu.assertEquals(cjson.decode(body).body, "hello")
  c:close()
end

return { TestFixChunkedFraming = TestFixChunkedFraming }
