-- The session tokens of a wrk run, shared by the scripts that send one per request: loaded with
-- dofile, it defines wrk's setup() and init() and leaves each thread's share in `tokens`, and a
-- random place in it in `i`.
--
-- Each wrk thread takes its own share of the tokens in $TOKENS_FILE (every WRK_THREADS-th,
-- default 2). Without it both threads walk the same tokens in step (wrk seeds every thread's
-- math.random alike): two requests in flight could change one cart, which real shoppers and the
-- independent check (each connection its own session) do not, and a short warm-up reaches only
-- half the sessions it could.
local next_thread = 0
function setup(thread)
  thread:set("thread_index", next_thread)
  next_thread = next_thread + 1
end

tokens = {}
function init(args)
  local threads = tonumber(os.getenv("WRK_THREADS") or "2")
  local all = {}
  for line in io.lines(os.getenv("TOKENS_FILE")) do all[#all + 1] = line end
  for k = 1, #all do
    if (k - 1) % threads == thread_index then tokens[#tokens + 1] = all[k] end
  end
  i = math.random(1, #tokens)
end
