-- GET /v1/products/{sku} of a random SKU of the 10,000; with a session token per request
-- (tokens from $TOKENS_FILE), which records a view, unless $ANONYMOUS is set.
local tokens = {}
for line in io.lines(os.getenv("TOKENS_FILE")) do tokens[#tokens + 1] = line end
local anonymous = os.getenv("ANONYMOUS") ~= nil
local i = math.random(1, #tokens)
request = function()
  i = i % #tokens + 1
  local path = string.format("/v1/products/LG-%05d", math.random(0, 9999))
  if anonymous then return wrk.format("GET", path) end
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. tokens[i] })
end
