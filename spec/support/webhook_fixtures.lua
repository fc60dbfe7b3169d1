-- spec/support/webhook_fixtures.lua — shared webhook test data (doc/PROTOCOL.md §5–6):
-- the SDK test secrets, the HMAC vectors V1–V3 and the dj-stripe
-- account.application.deauthorized fixture, byte for byte.
local M = {}

M.SECRET = "whsec_test_secret"
M.OTHER = "whsec_other_secret"

-- V1: node's and python's short test payload, t=1234567890.
M.V1_PAYLOAD = '{\n  "id": "evt_test_webhook",\n  "object": "event"\n}'
M.V1_SIG = "45969f456b3331a0f76e237ed33423d5f758908f1f0432d30e7d45ba89bb9edd"
-- V2: stripe-python tests/test_webhook.py DUMMY_WEBHOOK_PAYLOAD, t=12345.
M.V2_PAYLOAD = '{\n  "id": "evt_test_webhook",\n  "object": "event",\n' ..
  '  "data": { "object": { "id": "rdr_123", "object": "terminal.reader" } }\n}'
M.V2_SIG = "07b1ede164afb7b5de91267ffa656f568c65d6e0783ce0ac55ee094643578eda"
-- V3: compact payload, t=1700000000, one signature per secret (rotation).
M.V3_PAYLOAD = '{"id":"evt_1","object":"event"}'
M.V3_T = 1700000000
M.V3_SIG = "0c8670ed117751cc551a20e35839447075c42800ea3cf3e8a2fbda99cd1e6edd"
M.V3_SIG_OTHER = "b7ecf2b25fe8be89275e059c67c71512f61cf5110fbb361a3534f45aa94713f7"

-- dj-stripe tests/fixtures/event_account_application_deauthorized.json.
M.ACCOUNT = "acct_1Fg9jUA3kq9o1aTc"
M.FIXTURE_ID = "evt_1Iu8ZfA3kq9o1aTcf3b7EknK"
M.FIXTURE_APPLICATION = "ca_JWVN6vOJJs3RKsff0VUwIUfmUmN0VYqe"
M.FIXTURE = '{"id":"evt_1Iu8ZfA3kq9o1aTcf3b7EknK","object":"event","account":"acct_1Fg9jUA3kq9o1aTc",' ..
  '"api_version":"2020-08-27","created":1621742759,"data":{"object":{"id":"ca_JWVN6vOJJs3RKsff0VUwIUfmUmN0VYqe",' ..
  '"object":"application","name":null}},"livemode":false,"pending_webhooks":2,' ..
  '"request":{"id":null,"idempotency_key":null},"type":"account.application.deauthorized"}'

return M
