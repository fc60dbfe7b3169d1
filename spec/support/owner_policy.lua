-- A platform policy for the owner and onboarding specs: the platform's own
-- "session" is a plain `session` cookie naming the signed-in user; Account
-- Links prefill comes from `x-email`; hooks that run are logged for the spec.
return {
  owner = function(req) return req.cookies and req.cookies.session end,
  prefill = function(req) return { email = req.headers and req.headers["x-email"], country = "US" } end,
  on_connected = function(account)
    io.stderr:write(string.format("policy: connected %s owner=%s\n", account.id, tostring(account.owner)))
  end,
  on_deauthorized = function(id, source)
    io.stderr:write(string.format("policy: deauthorized %s (%s)\n", id, source))
  end,
}
