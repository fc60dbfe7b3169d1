-- stripe_connect.log: fixed fields first and in order, logfmt quoting,
-- JSON lines that decode, secrets redacted from every value.
local lu = require "luaunit"
local cjson = require "cjson.safe"
local log_mod = require "stripe_connect.log"

local TestLog = {}

local function capture(format, secrets)
  local lines = {}
  local l = log_mod.new{ app = "spec", format = format, secrets = secrets, clock = function() return 0 end,
    write = function(line) lines[#lines + 1] = line end }
  return l, lines
end

function TestLog.test_logfmt_rows()
  local l, lines = capture("logfmt")
  local rows = {
    { "plain", { "connected", { request_id = "r1" }, { account = "acct_1" } },
      'ts=1970-01-01T00:00:00Z level=info app=spec event=connected request_id=r1 account=acct_1' },
    { "fixed order, then others sorted", { "x", nil, { zeta = 1, reason = "expired", alpha = "a", account = "acct_2" }, "warn" },
      'ts=1970-01-01T00:00:00Z level=warn app=spec event=x request_id=- account=acct_2 reason=expired alpha=a zeta=1' },
    { "quoted", { "log", nil, { message = 'a "b"\\c\nd' } },
      'ts=1970-01-01T00:00:00Z level=info app=spec event=log request_id=- message="a \\"b\\"\\\\c\\nd"' },
    { "empty", { "log", nil, { message = "" } },
      'ts=1970-01-01T00:00:00Z level=info app=spec event=log request_id=- message=""' },
  }
  for i, row in ipairs(rows) do
    l.event(table.unpack(row[2], 1, 4))
    lu.assertEquals(lines[i], row[3], row[1])
  end
end

function TestLog.test_json_lines_decode_and_secrets_are_redacted()
  local l, lines = capture("json", { "state-secret-value-123" })
  l.event("token_error", { request_id = "r2" }, { stripe_error = "invalid_grant",
    message = "sk_test_abc123 whsec_xyz ac_0123456789abcdef0123 state-secret-value-123 rt_0123456789abcdef0123" })
  local ev = assert(cjson.decode(lines[1]))
  lu.assertEquals(ev.event, "token_error")
  lu.assertEquals(ev.request_id, "r2")
  lu.assertEquals(ev.stripe_error, "invalid_grant")
  lu.assertStrMatches(lines[1], '^{"ts":"1970%-01%-01T00:00:00Z","level":"info","app":"spec","event":"token_error",'
    .. '"request_id":"r2","stripe_error":"invalid_grant","message":.*}$')
  for _, s in ipairs({ "abc123", "xyz", "0123456789abcdef0123", "state-secret-value-123" }) do
    lu.assertNotStrContains(lines[1], s)
  end
end

return { TestLog = TestLog }
