-- A platform policy for the browser walk (spec/integration/platform_browser_spec.lua):
-- the prefill a platform sends from what it knows of its user, so that the
-- fake's consent page has prefilled fields to show (the apostrophe and the
-- ampersand check that they are shown escaped, as typed).
return {
  prefill = function()
    return { email = "jenny.rosen@example.com", country = "US", business_name = "Jenny's Bikes & Co" }
  end,
}
