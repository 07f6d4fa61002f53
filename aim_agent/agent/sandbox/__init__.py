"""The code sandbox: model-written experiments run in a separate, limited process.

MAIA runs the code a VLM writes with ``exec`` inside the agent's own process, where it can
read API keys, the model's weights and the disk, and where an endless loop or a memory bomb
takes the agent down. AIM runs it in a child process instead::

    from aim_agent.agent.experiment import code_handlers
    from aim_agent.agent.sandbox import run_code

    result = run_code(code, handlers=code_handlers(ctx, specs))
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
  sizes, dtypes, image pixel counts, nesting and the number of values the parent reads from
  one message (``max_items``, counted before any conversion) are bounded; images a handler
  decodes from bytes share a pixel budget per call (:func:`aim_agent.images.pixel_budget`).
- Before the model's code runs the child isolates itself, as far as the machine allows
  (:mod:`.isolation`, :mod:`.seccomp`, :mod:`.landlock`; ``SandboxResult.isolation`` says
  what was in force, and docs/security.md which attack each layer stops):

  - new PID, network, IPC, UTS and mount namespaces (plus a user namespace when AIM is not
    root): no network at all, a ``/proc`` showing only the sandbox, every mount read-only
    except the work directory, and a PID namespace whose end kills every process in it;
  - as root, a fresh uid/gid of the run's own (not ``nobody``, which other processes of the
    host share) with no capability (bounding set emptied); otherwise its own uid with every
    capability dropped; ``PR_SET_NO_NEW_PRIVS``; not dumpable; the work directory a tmpfs of
    ``workdir_bytes`` (the quota);
  - a seccomp filter: no ``socket()`` of any family, no ``exec``, no new processes (with
    the default ``max_processes=1``; threads work), no keyring, ``ptrace``, ``bpf``,
    ``io_uring``, mounts, namespaces, ``chown``, extended attributes or ``memfd_create``
    (and, without the read-only mount view, no ``chmod`` or ``utime`` on any path);
    ``EPERM``, so the code gets a ``PermissionError``;
  - Landlock (5.13+): reads only of the Python installation, its ``sys.path``, system
    libraries and ``SandboxLimits.read_paths``; writes only in its work directory; no TCP;
    no signals or abstract UNIX sockets outside;
  - resource limits, soft and hard: ``RLIMIT_AS`` (memory, 4 GiB: for the whole run, since
    it is one process), ``RLIMIT_CPU`` (60 s), ``RLIMIT_FSIZE`` (256 MB per file),
    ``RLIMIT_NOFILE``, ``RLIMIT_CORE=0``;
  - every process of the sandbox dies with the agent (``PR_SET_PDEATHSIG``), and the next
    run removes the work directories of agents that were killed.

  If neither namespaces nor seccomp work on the machine, :func:`run_code` raises
  :class:`SandboxUnavailable` instead of running the code, unless
  ``SandboxLimits(allow_unsafe=True)`` (``aim interpret --unsafe-sandbox``).
- The parent enforces the wall-clock limit (60 s; by default it counts the time handlers
  take too, see :class:`SandboxLimits`) and kills the child's whole process group (the child
  runs in its own session; the PID namespace takes everything else); it survives endless
  loops, memory bombs, ``os._exit``, segfaults and garbage on the channel, and reports each
  as a failure ``kind``.
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
It is an unprivileged, namespaced process, not a VM: a kernel bug reachable through an
allowed system call (``mmap``, ``futex``, file I/O) escapes it. Beyond that:

- It needs Linux for its layers. Without namespaces (a container without ``CAP_SYS_ADMIN``
  or user namespaces) there is no PID or network namespace and no read-only mount; without
  seccomp (an architecture other than x86_64/aarch64) sockets and ``exec`` rely on the
  namespaces; without Landlock (kernels before 5.13) the sandbox uid may read every
  world-readable file. The result's ``isolation`` lists what was "not in force". macOS has
  none of these: code runs there only with ``allow_unsafe``.
- Where no unprivileged uid can read the Python installation and no mount namespace can
  expose it, the sandbox refuses to run (:class:`SandboxUnavailable`); only with
  ``allow_unsafe`` does the code keep uid 0, without capabilities, with seccomp refusing
  ``chown``, ``chmod``, ``utime`` and extended attributes on every path.
- With ``max_processes > 1`` forks are allowed; ``RLIMIT_NPROC`` bounds them, counting
  threads and every process of the sandbox user, so the run's memory is at most
  ``max_processes`` x ``memory_bytes``.
- Handlers run in the parent with full rights: a handler must validate its arguments (the
  tool registry's pydantic input models do) and must not expose anything dangerous. A slow
  handler cannot be interrupted: the time limit is checked when it returns.
- Without a mount namespace the work directory's quota is measured by the parent every
  0.2 s (a run can overshoot it briefly; on a tmpfs ``/tmp`` its files use memory outside
  ``RLIMIT_AS``). With one, the
  quota's pages count on top of ``memory_bytes``. Side channels are out of scope.
- POSIX only; Windows is not supported.

For hostile models, run AIM itself in a VM (or gVisor/Firecracker) without network access
except to the VLM endpoint, with keys mounted only into the agent process.
"""

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
    "run_code",
]
