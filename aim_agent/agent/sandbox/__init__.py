"""The code sandbox: model-written experiments run in a separate, limited process.

MAIA runs the code a VLM writes with ``exec`` inside the agent's own process, where it can
read API keys, the model's weights and the disk, and where an endless loop or a memory bomb
takes the agent down. AIM runs it in a child process instead::

    from aim_agent.agent.sandbox import experiment_handlers, run_code

    result = run_code(code, handlers=experiment_handlers(system, tools))
    if result.ok:
        value = result.return_value
    else:
        print(result.report())

How it works
------------
- The parent compiles the code (never runs it) to report syntax errors and a missing entry
  function before any process starts.
- The child is ``python -I`` (no user site, no ``PYTHON*`` variables, no script directory
  on ``sys.path``) started with an environment built from an allow-list (``PATH``, ``LANG``,
  ``HOME`` and ``TMPDIR`` pointing at a fresh work directory, thread counts): nothing named
  like a key, token, secret, password or credential, and no provider variables
  (``GOOGLE_*``, ``OPENAI_*``, ``ANTHROPIC_*``, ``HF_*``, ``AWS_*`` ...). Its working directory is
  a new temporary directory, removed afterwards. Other file descriptors of the parent are
  closed (``close_fds``), so it inherits no sockets to the VLM provider.
- The child holds no model and no keys. ``system`` and ``tools`` inside it are proxies: a
  method call becomes a message to the parent, which checks it against the handler's
  allow-list, decodes the arguments, runs the real method, and sends the result back (or the
  error, which the child raises at the model's line).
- The wire is length-prefixed JSON with tagged values (:mod:`.wire`): images as PNG, arrays
  and tensors as dtype/shape/bytes. The parent never unpickles anything from the child;
  sizes, dtypes, image pixel counts and nesting are bounded.
- Before the model's code runs the child limits itself, soft and hard (it cannot raise them
  again): ``RLIMIT_AS`` (memory, 4 GiB), ``RLIMIT_CPU`` (60 s), ``RLIMIT_FSIZE`` (256 MB per
  file), ``RLIMIT_NOFILE``, ``RLIMIT_CORE=0`` (and ``RLIMIT_NPROC`` if asked). On Linux with
  Landlock (5.13+) it also confines itself (:mod:`.landlock`): it may read only the Python
  installation, the directories on its own ``sys.path``, system libraries, its own ``/proc``
  entry and ``SandboxLimits.read_paths``; write only in its work directory; make no TCP
  connections (kernel 6.7+); and not signal, ptrace or read the ``/proc/<pid>/environ`` of
  the parent. ``SandboxResult.isolation`` says what was in force.
- The parent enforces the wall-clock limit (60 s; by default it counts the time handlers
  take too, see :class:`SandboxLimits`) and kills the child's whole process group (the child
  runs in its own session); it survives endless loops, memory bombs, ``os._exit``,
  segfaults and garbage on the channel, and reports each as a failure ``kind``.
- Prints of the model's code come back in ``SandboxResult.stdout`` (the first and last
  characters up to ``max_stdout_chars``, with a note of what was cut), even when the child is
  killed. ``SandboxResult.calls`` lists each proxy call with its duration, for the log.

Model code sees ordinary Python: ``system.neuron(images)`` returns lists and PIL images;
``system.layer`` is a string; a tool's pydantic output arrives as a :class:`Record` (fields as
attributes); arrays are numpy (torch tensors become torch only if the code imported torch);
a tool's error is raised at the calling line as ``ToolError`` (also a ``ValueError`` etc.
when the tool raised one). Calling a method that is not allowed is an ``AttributeError``
in the child and is refused again by the parent, which never trusts the child.

What it does NOT protect against
--------------------------------
It is a process sandbox, not a container or a VM.

- Without Landlock (older kernels, macOS, ``landlock=False``) the child can read every file
  the user can read (``~/.config``, ``.env`` files, cached credentials), and, as the same
  user, the parent's ``/proc/<pid>/environ`` and (where ptrace is allowed) its memory:
  keys that live in the parent's environment are then reachable by determined code.
- Even with Landlock there is no network namespace: UDP (and so DNS) is not restricted, and
  on kernels before 6.7 TCP is not either. Kernel bugs are out of scope.
- ``RLIMIT_NPROC`` counts all processes of the user and root ignores it, so a fork bomb is
  bounded only by the wall-clock kill of the process group (a process that leaves the group
  with ``setsid`` escapes that kill). ``RLIMIT_AS`` is per process.
- Handlers run in the parent with full rights: a handler must validate its arguments (the
  tool registry's pydantic input models do) and must not expose anything dangerous. A slow
  handler cannot be interrupted: the time limit is checked when it returns.
- The work directory has no disk quota beyond ``RLIMIT_FSIZE`` per file.
- POSIX only (Linux, macOS); Landlock is Linux only. Windows is not supported.

A deployment that runs untrusted models or prompts should add an outer boundary: run AIM
itself in a container (or gVisor/Firecracker) without network access except to the VLM
endpoint, as an unprivileged user, with keys mounted only into the agent process and a
cgroup memory/pids limit. The sandbox then protects the agent from its own experiments.
"""

from aim_agent.agent.sandbox.handlers import experiment_handlers
from aim_agent.agent.sandbox.runner import check_code, child_environment, clean_stale_workdirs, run_code
from aim_agent.agent.sandbox.spec import (
    CallRecord,
    FailureKind,
    ObjectHandler,
    SandboxLimits,
    SandboxResult,
    SandboxUnavailable,
)
from aim_agent.agent.sandbox.wire import Record

__all__ = [
    "CallRecord",
    "FailureKind",
    "ObjectHandler",
    "Record",
    "SandboxLimits",
    "SandboxResult",
    "SandboxUnavailable",
    "check_code",
    "child_environment",
    "clean_stale_workdirs",
    "experiment_handlers",
    "run_code",
]
