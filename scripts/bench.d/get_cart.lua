-- GET /v1/cart with a different session per request (tokens from $TOKENS_FILE).
--
-- Each wrk thread walks its own share of the tokens (every WRK_THREADS-th, default 2), so a
-- warm-up of one pass reaches every session. Without it both threads walk the same tokens in
-- step (wrk seeds every thread's math.random alike), and a 2 s warm-up through the balancer
-- left most sessions cold for the measured run: their first read slid the session and
-- loaded the cart, about 1,600 and 2,900 extra round trips of that run.
local next_thread = 0
function setup(thread)
  thread:set("thread_index", next_thread)
  next_thread = next_thread + 1
end

local tokens = {}
local i
function init(args)
  local threads = tonumber(os.getenv("WRK_THREADS") or "2")
  local all = {}
  for line in io.lines(os.getenv("TOKENS_FILE")) do all[#all + 1] = line end
  for k = 1, #all do
    if (k - 1) % threads == thread_index then tokens[#tokens + 1] = all[k] end
  end
  i = math.random(1, #tokens)
end

request = function()
  i = i % #tokens + 1
  return wrk.format("GET", "/v1/cart", { ["Authorization"] = "Bearer " .. tokens[i] })
end
