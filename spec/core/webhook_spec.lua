-- C core: core.webhook_verify — Stripe-Signature parsing and verification
-- (doc/PROTOCOL.md §5: vectors V1–V3 and every rejection reason).  Runs under
-- Lua 5.4 and LuaJIT: no integer division, no goto, no table.unpack.
local lu = require "luaunit"
local core = require "stripe_connect.core"

local fx = require "support.webhook_fixtures"

local SECRET, OTHER = fx.SECRET, fx.OTHER
local V1_PAYLOAD, V1_SIG = fx.V1_PAYLOAD, fx.V1_SIG
local V2_PAYLOAD, V2_SIG = fx.V2_PAYLOAD, fx.V2_SIG
local V3_PAYLOAD, V3_SIG, V3_SIG_OTHER, V3_T = fx.V3_PAYLOAD, fx.V3_SIG, fx.V3_SIG_OTHER, fx.V3_T
local V3_HEADER = "t=1700000000,v1=" .. V3_SIG

local function sig(secret, t, payload)
  return core.hex_encode(core.hmac_sha256(secret, t .. "." .. payload))
end

local at_v3 = { now = V3_T }

local MAX_T = "999999999999999"          -- 15 digits: the largest accepted timestamp
local TEN_YEARS = 10 * 365 * 24 * 3600    -- the largest accepted tolerance

-- n v1 entries that never match, then `last` (when given).
local function many_v1(n, last)
  local parts = { "t=1700000000" }
  for i = 1, n do parts[#parts + 1] = "v1=" .. string.format("%064x", i) end
  if last then parts[#parts + 1] = "v1=" .. last end
  return table.concat(parts, ",")
end

-- { name, payload, header, secrets, opts, expected: number (accepted, the
--   timestamp) or a reason code }
local rows = {
  -- Vectors.
  { "V1", V1_PAYLOAD, "t=1234567890,v1=" .. V1_SIG, SECRET, { now = 1234567890 }, 1234567890 },
  { "V2", V2_PAYLOAD, "t=12345,v1=" .. V2_SIG, SECRET, { now = 12345 }, 12345 },
  { "V3", V3_PAYLOAD, V3_HEADER, SECRET, at_v3, V3_T },
  { "V3 other secret", V3_PAYLOAD, "t=1700000000,v1=" .. V3_SIG_OTHER, OTHER, at_v3, V3_T },
  { "V3 rotation header, old secret", V3_PAYLOAD, V3_HEADER .. ",v1=" .. V3_SIG_OTHER, SECRET, at_v3, V3_T },
  { "V3 rotation header, new secret", V3_PAYLOAD, V3_HEADER .. ",v1=" .. V3_SIG_OTHER, OTHER, at_v3, V3_T },
  { "several secrets configured, first matches", V3_PAYLOAD, V3_HEADER, { SECRET, OTHER }, at_v3, V3_T },
  { "several secrets configured, second matches", V3_PAYLOAD, V3_HEADER, { OTHER, SECRET }, at_v3, V3_T },
  { "uppercase hex", V3_PAYLOAD, "t=1700000000,v1=" .. V3_SIG:upper(), SECRET, at_v3, V3_T },
  { "v0 beside v1 is ignored", V3_PAYLOAD, V3_HEADER .. ",v0=" .. ("6f"):rep(32), SECRET, at_v3, V3_T },
  { "valid plus v1=potato", V3_PAYLOAD, V3_HEADER .. ",v1=potato", SECRET, at_v3, V3_T },
  { "v1=potato plus valid", V3_PAYLOAD, "t=1700000000,v1=potato,v1=" .. V3_SIG, SECRET, at_v3, V3_T },
  { "spaces after commas", V3_PAYLOAD, "t=1700000000, v1=" .. V3_SIG .. ",  v0=abc", SECRET, at_v3, V3_T },
  { "tab after comma, trailing space", V3_PAYLOAD, "t=1700000000,\tv1=" .. V3_SIG .. " ", SECRET, at_v3, V3_T },
  { "elements in any order", V3_PAYLOAD, "v1=" .. V3_SIG .. ",t=1700000000", SECRET, at_v3, V3_T },
  { "unknown scheme ignored", V3_PAYLOAD, V3_HEADER .. ",v2=xyz,foo=", SECRET, at_v3, V3_T },
  { "value containing '='", V3_PAYLOAD, V3_HEADER .. ",v0=a=b", SECRET, at_v3, V3_T },
  -- Tolerance: two-sided, inclusive.
  { "exactly 300 s old", V3_PAYLOAD, V3_HEADER, SECRET, { now = V3_T + 300 }, V3_T },
  { "301 s old", V3_PAYLOAD, V3_HEADER, SECRET, { now = V3_T + 301 }, "too_old" },
  { "exactly 300 s ahead", V3_PAYLOAD, V3_HEADER, SECRET, { now = V3_T - 300 }, V3_T },
  { "301 s ahead", V3_PAYLOAD, V3_HEADER, SECRET, { now = V3_T - 301 }, "in_future" },
  { "15 s old, tolerance 10", V3_PAYLOAD, V3_HEADER, SECRET, { now = V3_T + 15, tolerance = 10 }, "too_old" },
  { "9 s old, tolerance 10", V3_PAYLOAD, V3_HEADER, SECRET, { now = V3_T + 9, tolerance = 10 }, V3_T },
  { "400 s old (constructEventAsync row)", V3_PAYLOAD, V3_HEADER, SECRET, { now = V3_T + 400 }, "too_old" },
  { "one day ahead", V3_PAYLOAD, V3_HEADER, SECRET, { now = V3_T - 86400 }, "in_future" },
  { "large tolerance", V3_PAYLOAD, V3_HEADER, SECRET, { now = V3_T + 86400, tolerance = 86401 }, V3_T },
  { "t=12345 against the real clock", V2_PAYLOAD, "t=12345,v1=" .. V2_SIG, SECRET, nil, "too_old" },
  -- Signature rejections (checked before the timestamp, as Stripe does).
  { "one byte of the body changed", V3_PAYLOAD:gsub("evt_1", "evt_2"), V3_HEADER, SECRET, at_v3, "no_match" },
  { "trailing newline added", V3_PAYLOAD .. "\n", V3_HEADER, SECRET, at_v3, "no_match" },
  { "wrong secret", V3_PAYLOAD, V3_HEADER, "whsec_wrong", at_v3, "no_match" },
  { "timestamp changed", V3_PAYLOAD, "t=1700000001,v1=" .. V3_SIG, SECRET, at_v3, "no_match" },
  { "bad signature and old", V3_PAYLOAD, "t=1700000000,v1=" .. ("0"):rep(64), SECRET,
    { now = V3_T + 9999 }, "no_match" },
  { "bad_signature", V3_PAYLOAD, "t=1700000000,v1=bad_signature", SECRET, at_v3, "no_match" },
  { "empty v1=", V3_PAYLOAD, "t=1700000000,v1=", SECRET, at_v3, "no_match" },
  { "v1 one digit short", V3_PAYLOAD, "t=1700000000,v1=" .. V3_SIG:sub(1, 63), SECRET, at_v3, "no_match" },
  { "v1 one digit long", V3_PAYLOAD, "t=1700000000,v1=" .. V3_SIG .. "0", SECRET, at_v3, "no_match" },
  { "right MAC under v0 only", V3_PAYLOAD, "t=1700000000,v0=" .. V3_SIG, SECRET, at_v3, "no_v1" },
  { "V1 scheme case matters", V3_PAYLOAD, "t=1700000000,V1=" .. V3_SIG, SECRET, at_v3, "no_v1" },
  { "only a timestamp", V3_PAYLOAD, "t=1700000000", SECRET, at_v3, "no_v1" },
  { "secret with trailing space", V3_PAYLOAD, V3_HEADER, SECRET .. " ", at_v3, "no_match" },
  -- Header shape.
  { "no header (nil)", V3_PAYLOAD, nil, SECRET, at_v3, "no_header" },
  { "empty header", V3_PAYLOAD, "", SECRET, at_v3, "no_header" },
  { "empty payload", "", V3_HEADER, SECRET, at_v3, "no_payload" },
  { "bad_header", V3_PAYLOAD, "bad_header", SECRET, at_v3, "malformed_header" },
  { "no timestamp", V3_PAYLOAD, "v1=" .. V3_SIG, SECRET, at_v3, "malformed_header" },
  { "two timestamps", V3_PAYLOAD, V3_HEADER .. ",t=1700000000", SECRET, at_v3, "malformed_header" },
  { "negative timestamp", V3_PAYLOAD, "t=-5,v1=" .. V3_SIG, SECRET, at_v3, "malformed_header" },
  { "timestamp with a fraction", V3_PAYLOAD, "t=1700000000.5,v1=" .. V3_SIG, SECRET, at_v3, "malformed_header" },
  { "timestamp with a leading zero", V3_PAYLOAD, "t=01700000000,v1=" .. V3_SIG, SECRET, at_v3,
    "malformed_header" },
  { "timestamp of 16 digits", V3_PAYLOAD, "t=" .. ("9"):rep(16) .. ",v1=" .. V3_SIG, SECRET, at_v3,
    "malformed_header" },
  { "empty timestamp", V3_PAYLOAD, "t=,v1=" .. V3_SIG, SECRET, at_v3, "malformed_header" },
  { "space before '='", V3_PAYLOAD, "t =1700000000,v1=" .. V3_SIG, SECRET, at_v3, "malformed_header" },
  { "empty element", V3_PAYLOAD, "t=1700000000,,v1=" .. V3_SIG, SECRET, at_v3, "malformed_header" },
  { "trailing comma", V3_PAYLOAD, V3_HEADER .. ",", SECRET, at_v3, "malformed_header" },
  { "element without '='", V3_PAYLOAD, V3_HEADER .. ",junk", SECRET, at_v3, "malformed_header" },
  { "empty key", V3_PAYLOAD, V3_HEADER .. ",=x", SECRET, at_v3, "malformed_header" },
  { "huge header (over 8 KiB)", V3_PAYLOAD, V3_HEADER .. ",v0=" .. ("a"):rep(8192), SECRET, at_v3,
    "malformed_header" },
  { "too many elements", V3_PAYLOAD, V3_HEADER .. (",v0=a"):rep(64), SECRET, at_v3, "malformed_header" },
  { "64 elements is fine", V3_PAYLOAD, V3_HEADER .. (",v0=a"):rep(62), SECRET, at_v3, V3_T },
  { "8 KiB header is fine", V3_PAYLOAD, V3_HEADER .. ",v0=" .. ("a"):rep(8192 - #V3_HEADER - 4), SECRET,
    at_v3, V3_T },
  -- Review (integer overflow, NUL bytes, many v1, extreme clocks): rows
  -- named after what they guard against.
  { "t=99999999999999999999 (would overflow a 64-bit integer)", V3_PAYLOAD,
    "t=99999999999999999999,v1=" .. V3_SIG, SECRET, at_v3, "malformed_header" },
  { "t=9223372036854775808 (2^63)", V3_PAYLOAD, "t=9223372036854775808,v1=" .. V3_SIG, SECRET, at_v3,
    "malformed_header" },
  { "t=18446744073709551617 (2^64+1 wraps to 1)", V3_PAYLOAD, "t=18446744073709551617,v1=" .. sig(SECRET, 1, V3_PAYLOAD),
    SECRET, { now = 1 }, "malformed_header" },
  { "largest timestamp, far in the future", V3_PAYLOAD, "t=" .. MAX_T .. ",v1=" .. sig(SECRET, MAX_T, V3_PAYLOAD),
    SECRET, { now = 0, tolerance = TEN_YEARS }, "in_future" },
  { "largest clock, timestamp 1", V3_PAYLOAD, "t=1,v1=" .. sig(SECRET, 1, V3_PAYLOAD), SECRET,
    { now = tonumber(MAX_T), tolerance = TEN_YEARS }, "too_old" },
  { "t=0 at now=0", V3_PAYLOAD, "t=0,v1=" .. sig(SECRET, 0, V3_PAYLOAD), SECRET, { now = 0 }, 0 },
  { "NUL inside the timestamp", V3_PAYLOAD, "t=1700000000\0,v1=" .. V3_SIG, SECRET, at_v3, "malformed_header" },
  { "NUL before the timestamp digits", V3_PAYLOAD, "t=\0" .. "1700000000,v1=" .. V3_SIG, SECRET, at_v3,
    "malformed_header" },
  { "NUL after the only v1", V3_PAYLOAD, V3_HEADER .. "\0", SECRET, at_v3, "no_match" },
  { "NUL in an ignored v0", V3_PAYLOAD, V3_HEADER .. ",v0=\0\0", SECRET, at_v3, V3_T },
  { "NUL as a key", V3_PAYLOAD, V3_HEADER .. ",\0=1", SECRET, at_v3, V3_T },
  { "header of NULs", V3_PAYLOAD, ("\0"):rep(32), SECRET, at_v3, "malformed_header" },
  { "NUL appended to the payload", V3_PAYLOAD .. "\0", V3_HEADER, SECRET, at_v3, "no_match" },
  { "63 v1 entries, the valid one last", V3_PAYLOAD, many_v1(62, V3_SIG), SECRET, at_v3, V3_T },
  { "63 v1 entries, none valid", V3_PAYLOAD, many_v1(63), SECRET, at_v3, "no_match" },
  { "64 v1 entries and t: too many elements", V3_PAYLOAD, many_v1(63, V3_SIG), SECRET, at_v3, "malformed_header" },
  { "v1 with 64 non-hex characters", V3_PAYLOAD, "t=1700000000,v1=" .. ("g"):rep(64), SECRET, at_v3, "no_match" },
  { "v1 with a sign", V3_PAYLOAD, "t=1700000000,v1=+" .. V3_SIG:sub(2), SECRET, at_v3, "no_match" },
  { "timestamp with a plus sign", V3_PAYLOAD, "t=+1700000000,v1=" .. V3_SIG, SECRET, at_v3, "malformed_header" },
  { "timestamp in hex", V3_PAYLOAD, "t=0x6553f100,v1=" .. V3_SIG, SECRET, at_v3, "malformed_header" },
  { "timestamp with spaces inside", V3_PAYLOAD, "t= 1700000000,v1=" .. V3_SIG, SECRET, at_v3, "malformed_header" },
  { "space before a comma", V3_PAYLOAD, "t=1700000000 ,v1=" .. V3_SIG, SECRET, at_v3, "malformed_header" },
  { "leading spaces", V3_PAYLOAD, "  " .. V3_HEADER, SECRET, at_v3, V3_T },
  { "only spaces", V3_PAYLOAD, "   ", SECRET, at_v3, "malformed_header" },
  { "CRLF folded header: key \"\\r\\n v1\" is no v1", V3_PAYLOAD, "t=1700000000,\r\n v1=" .. V3_SIG, SECRET, at_v3,
    "no_v1" },
  { "ten-year tolerance", V3_PAYLOAD, V3_HEADER, SECRET, { now = V3_T + TEN_YEARS, tolerance = TEN_YEARS }, V3_T },
}

local TestWebhookVerify = {}

function TestWebhookVerify.test_rows()
  for _, r in ipairs(rows) do
    local name, payload, header, secrets, opts, want = r[1], r[2], r[3], r[4], r[5], r[6]
    local ok, a, b = core.webhook_verify(payload, header, secrets, opts)
    if type(want) == "number" then
      lu.assertEquals({ ok, a, b }, { true, want }, name .. ": " .. tostring(a))
    else
      lu.assertEquals({ ok, b }, { nil, want }, name)
      lu.assertEquals(type(a), "string", name)
    end
  end
end

function TestWebhookVerify.test_messages_never_hold_secrets_or_signatures()
  for _, r in ipairs(rows) do
    local ok, msg = core.webhook_verify(r[2], r[3], r[4], r[5])
    if not ok then
      local secrets = type(r[4]) == "table" and r[4] or { r[4] }
      for _, s in ipairs(secrets) do
        lu.assertNil(msg:find(s, 1, true), r[1])
        lu.assertNil(msg:find("whsec_", 1, true), r[1])
      end
      lu.assertNil(msg:find(V3_SIG, 1, true), r[1])
    end
  end
end

function TestWebhookVerify.test_whitespace_note()
  local _, msg, code = core.webhook_verify(V3_PAYLOAD, V3_HEADER, SECRET .. " ", at_v3)
  lu.assertEquals(code, "no_match")
  lu.assertStrContains(msg, "whitespace")
  _, msg, code = core.webhook_verify(V3_PAYLOAD, V3_HEADER, "whsec_wrong", at_v3)
  lu.assertEquals(code, "no_match")
  lu.assertNil(msg:find("whitespace", 1, true))
end

function TestWebhookVerify.test_default_clock_accepts_now()
  local now = os.time()
  local header = "t=" .. now .. ",v1=" .. sig(SECRET, now, V3_PAYLOAD)
  local ok, t = core.webhook_verify(V3_PAYLOAD, header, SECRET)
  lu.assertEquals({ ok, t }, { true, now })
end

function TestWebhookVerify.test_binary_payload()
  local payload = "\0\255\r\n{}\0"
  local header = "t=1700000000,v1=" .. sig(SECRET, V3_T, payload)
  lu.assertEquals({ core.webhook_verify(payload, header, SECRET, at_v3) }, { true, V3_T })
  lu.assertEquals(select(3, core.webhook_verify(payload:sub(1, -2), header, SECRET, at_v3)), "no_match")
end

function TestWebhookVerify.test_sixteen_secrets()
  local secrets = {}
  for i = 1, 15 do secrets[i] = "whsec_" .. i end
  secrets[16] = SECRET
  lu.assertEquals({ core.webhook_verify(V3_PAYLOAD, V3_HEADER, secrets, at_v3) }, { true, V3_T })
end

-- Misuse raises: { name, args (4 of them), expected message fragment }.
local misuse = {
  { "payload not a string", { nil, V3_HEADER, SECRET }, "bad argument #1" },
  { "header a table (array header)", { V3_PAYLOAD, { V3_HEADER }, SECRET }, "bad argument #2" },
  { "no secrets", { V3_PAYLOAD, V3_HEADER, nil }, "bad argument #3" },
  { "empty list of secrets", { V3_PAYLOAD, V3_HEADER, {} }, "bad argument #3" },
  { "empty secret", { V3_PAYLOAD, V3_HEADER, "" }, "empty secret" },
  { "empty secret in a list", { V3_PAYLOAD, V3_HEADER, { SECRET, "" } }, "empty secret" },
  { "non-string secret", { V3_PAYLOAD, V3_HEADER, { SECRET, 5 } }, "must be a string" },
  { "17 secrets", { V3_PAYLOAD, V3_HEADER, { "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l",
    "m", "n", "o", "p", "q" } }, "1 to 16" },
  { "opts not a table", { V3_PAYLOAD, V3_HEADER, SECRET, 300 }, "bad argument #4" },
  { "unknown option", { V3_PAYLOAD, V3_HEADER, SECRET, { tolerence = 300 } }, "unknown option 'tolerence'" },
  { "tolerance 0", { V3_PAYLOAD, V3_HEADER, SECRET, { tolerance = 0 } }, "would not disable" },
  { "negative tolerance", { V3_PAYLOAD, V3_HEADER, SECRET, { tolerance = -1 } }, "tolerance" },
  { "fractional tolerance", { V3_PAYLOAD, V3_HEADER, SECRET, { tolerance = 1.5 } }, "tolerance" },
  { "string tolerance", { V3_PAYLOAD, V3_HEADER, SECRET, { tolerance = "300" } }, "tolerance" },
  { "now not a number", { V3_PAYLOAD, V3_HEADER, SECRET, { now = "1" } }, "now must be" },
  { "tolerance over ten years", { V3_PAYLOAD, V3_HEADER, SECRET, { tolerance = TEN_YEARS + 1 } }, "tolerance" },
  { "tolerance 1e300", { V3_PAYLOAD, V3_HEADER, SECRET, { tolerance = 1e300 } }, "tolerance" },
  { "tolerance math.huge", { V3_PAYLOAD, V3_HEADER, SECRET, { tolerance = math.huge } }, "tolerance" },
  { "tolerance -math.huge", { V3_PAYLOAD, V3_HEADER, SECRET, { tolerance = -math.huge } }, "tolerance" },
  { "tolerance NaN", { V3_PAYLOAD, V3_HEADER, SECRET, { tolerance = 0 / 0 } }, "tolerance" },
  { "negative now", { V3_PAYLOAD, V3_HEADER, SECRET, { now = -1 } }, "now must be" },
  { "now past 15 digits", { V3_PAYLOAD, V3_HEADER, SECRET, { now = 1e15 } }, "now must be" },
  { "now NaN", { V3_PAYLOAD, V3_HEADER, SECRET, { now = 0 / 0 } }, "now must be" },
  { "option key not a string", { V3_PAYLOAD, V3_HEADER, SECRET, { 300 } }, "unknown option" },
  { "secrets a number", { V3_PAYLOAD, V3_HEADER, 5 }, "bad argument #3" },
}

function TestWebhookVerify.test_misuse_raises()
  for _, r in ipairs(misuse) do
    local a = r[2]
    local ok, err = pcall(core.webhook_verify, a[1], a[2], a[3], a[4])
    lu.assertFalse(ok, r[1])
    lu.assertStrContains(tostring(err), r[3], false, r[1])
  end
end

return { TestWebhookVerify = TestWebhookVerify }
