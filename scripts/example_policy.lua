-- scripts/example_policy.lua — an example platform policy.  Use it with
--   POLICY=scripts/example_policy.lua stripe-connect serve scripts/platform.lua
-- Every hook is optional; the defaults are in lua/stripe_connect/policy.lua.
return {
  -- Prefill Stripe's sign-up form from what the platform already knows
  -- (here: query arguments of /connect, e.g. /connect?email=a@b.example).
  prefill = function(req)
    return { email = req.args.email, country = "US" }
  end,

  -- Send users back to their dashboard after connecting (local paths only;
  -- anything else is ignored by the library).
  return_to = function(req)
    return req.args.return_to or "/connected"
  end,

  on_connected = function(account, req)
    io.stderr:write(string.format("policy: connected %s (%s, %s)\n", account.id,
      account.scope or "?", account.livemode and "live" or "test"))
  end,

  on_denied = function(err, req)
    io.stderr:write("policy: the user declined to connect\n")
  end,

  on_deauthorized = function(account_id, source)
    io.stderr:write(string.format("policy: %s disconnected (%s)\n", account_id, source))
  end,
}
