"""Scoring hypotheses on the evidence: separation (AUC), effect size, variance explained, consistency across
backgrounds, edit pairs and 2x2 cells, then a status and a confidence; and the best hypothesis."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from aim_world.scientist.evidence import Record
from aim_world.scientist.hypotheses import Hyp, hyp_id, present

STATUS_RANK = {"supported": 0, "open": 1, "refuted": 2}  # the order statuses are ranked in
CONDITION_LEAK = 0.3  # "A only when B": A alone may fire at most this far from "neither" towards "both"
OR_PART = 0.25  # each part of "A OR B" alone must fire this far from "neither" towards the stronger part
COVERAGE_PRICE = 0.05  # exemplar share an extra concept must explain to be worth naming


@dataclass
class Scored:
    """A hypothesis with the numbers behind its status."""

    hyp: Hyp
    n_pos: int = 0
    n_neg: int = 0
    mean_pos: float = 0.0
    mean_neg: float = 0.0
    auc: float = 0.5
    edits_total: int = 0
    edits_agree: int = 0
    contexts_total: int = 0
    contexts_agree: int = 0
    r2: float = 0.0  # share of the activation variance the prediction explains
    cells: dict[str, tuple[float, int]] = field(default_factory=dict)  # pair hypotheses: mean, n per 2x2 cell
    flaw: str = ""  # why a pair hypothesis fails although it separates (a cell that contradicts it)
    status: Literal["open", "supported", "refuted"] = "open"
    confidence: float = 0.5

    @property
    def effect(self) -> float:
        return self.mean_pos - self.mean_neg


def _auc(pos: list[float], neg: list[float]) -> float:
    """Probability that a random positive outranks a random negative (ties count half), from ranks."""
    if not pos or not neg:
        return 0.5
    values = sorted([(v, 0) for v in neg] + [(v, 1) for v in pos])
    rank_sum, i = 0.0, 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1][0] == values[i][0]:
            j += 1
        positives = sum(flag for _, flag in values[i : j + 1])
        rank_sum += positives * ((i + j) / 2 + 1)  # tied values share their average rank
        i = j + 1
    n_pos, n_neg = len(pos), len(neg)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _r2(pos: list[float], neg: list[float]) -> float:
    """Squared point-biserial correlation between 'predicted to fire' and the activation."""
    values = pos + neg
    if not pos or not neg:
        return 0.0
    mean = sum(values) / len(values)
    total = sum((v - mean) ** 2 for v in values)
    if total <= 1e-12:
        return 0.0
    between = len(pos) * (sum(pos) / len(pos) - mean) ** 2 + len(neg) * (sum(neg) / len(neg) - mean) ** 2
    return between / total


def response_scale(records: list[Record], exemplar_acts: Sequence[float]) -> float:
    """The largest activation seen (records and exemplars), the unit scores' effects are measured in."""
    values = [abs(r.activation) for r in records] + [abs(float(a)) for a in exemplar_acts]
    return max(values, default=1.0) or 1.0


def score(h: Hyp, records: list[Record], scale: float) -> Scored:
    """Separation, effect, per-context consistency and edit agreement of one hypothesis."""
    s = Scored(h)
    fires = [h.fires(r.features) for r in records]  # the hypothesis's presence table, asked once per image
    pos = [r.activation for r, f in zip(records, fires, strict=True) if f]
    neg = [r.activation for r, f in zip(records, fires, strict=True) if not f]
    s.n_pos, s.n_neg = len(pos), len(neg)
    s.mean_pos = sum(pos) / len(pos) if pos else 0.0
    s.mean_neg = sum(neg) / len(neg) if neg else 0.0
    s.auc = _auc(pos, neg)
    s.r2 = _r2(pos, neg)
    for bg in sorted({r.background or "plain" for r in records}):
        p = [r.activation for r, f in zip(records, fires, strict=True) if r.background == bg and f]
        q = [r.activation for r, f in zip(records, fires, strict=True) if r.background == bg and not f]
        if p and q:
            s.contexts_total += 1
            s.contexts_agree += sum(p) / len(p) - sum(q) / len(q) >= 0.1 * scale
    for r, after in zip(records, fires, strict=True):
        if r.pair is None:
            continue
        orig, before = records[r.pair], fires[r.pair]
        delta = r.activation - orig.activation
        if before != after:
            s.edits_total += 1
            s.edits_agree += delta * (1 if after else -1) >= 0.1 * scale
        elif before:
            s.edits_total += 1
            s.edits_agree += r.activation >= 0.5 * orig.activation
    if h.kind != "single":
        _check_cells(s, records)
    if not s.flaw and h.kind != "conditional":
        _check_members(s, records)
    _judge(s, scale)
    return s


def _check_members(s: Scored, records: Sequence[Record]) -> None:
    """A list (a group of nouns, an OR) is a conclusion only when every member fired on its own images: each
    member's images must reach :data:`OR_PART` of the way from the images the hypothesis leaves out to its
    strongest member (a member never drawn is not judged here). Otherwise the list names a member that does
    not drive the unit, and ``flaw`` says which."""
    members: list[tuple[str, str]] = []  # (how it reads, feature key)
    for c in s.hyp.concepts:
        if c.kind == "group":
            members += [(m, f"object:{m}") for m in c.members]
        else:
            members.append((c.phrase, c.key))
    if len(members) < 2 or s.n_neg < 2:
        return
    means = {}
    for name, key in members:
        acts = [r.activation for r in records if key in r.features]
        if acts:
            means[name] = sum(acts) / len(acts)
    if len(means) < 2:
        return
    base, top = s.mean_neg, max(means.values())
    weak = [name for name, m in means.items() if m < base + OR_PART * (top - base)]
    if weak:
        s.flaw = f"{', '.join(weak[:3])} did not fire on {'its' if len(weak) == 1 else 'their'} own images"


def _check_cells(s: Scored, records: list[Record]) -> None:
    """The 2x2 cells of an OR or conditional hypothesis, and the cell that contradicts it, if any.

    "A, only when B" needs A alone and B alone to stay low (less than :data:`CONDITION_LEAK` of the
    way from the images with neither to the images with both: a condition switches the response
    on, it does not merely add to it); "A OR B" needs each alone to fire, at least
    :data:`OR_PART` of the way from the images with neither to the stronger part (real units respond
    to their concepts with graded strength). Measured from the images with neither, so a unit with a
    high baseline is judged the same way.
    """
    a, b = s.hyp.a, s.hyp.b
    assert b is not None
    groups: dict[str, list[float]] = {"both": [], "a only": [], "b only": [], "neither": []}
    for r in records:
        pa, pb = present(a, r.features), present(b, r.features)
        key = "both" if pa and pb else "a only" if pa else "b only" if pb else "neither"
        groups[key].append(r.activation)
    s.cells = {k: (sum(v) / len(v), len(v)) for k, v in groups.items() if v}
    if "neither" not in s.cells:
        return
    base = s.cells["neither"][0]
    names = {"a only": f"{a.phrase} without {b.phrase}", "b only": f"{b.phrase} without {a.phrase}"}
    if s.hyp.kind == "conditional" and "both" in s.cells:
        leak = base + CONDITION_LEAK * (s.cells["both"][0] - base)
        for key in ("a only", "b only"):
            if key in s.cells and s.cells[key][1] >= 2 and s.cells[key][0] >= leak:
                s.flaw = f"{names[key]} fires too (mean {s.cells[key][0]:.3g})"
    elif s.hyp.kind == "or":
        alone = {k: s.cells[k] for k in ("a only", "b only") if k in s.cells and s.cells[k][1] >= 2}
        if len(alone) == 2:
            top = max(m for m, _ in alone.values())
            for key, (m, _) in alone.items():
                if m < base + OR_PART * (top - base):
                    s.flaw = f"{names[key]} barely fires (mean {m:.3g} vs {top:.3g})"


def _judge(s: Scored, scale: float) -> None:
    rel = s.effect / scale
    edit_rate = s.edits_agree / s.edits_total if s.edits_total else None
    if s.n_pos < 2 or s.n_neg < 2:
        s.status, s.confidence = "open", 0.5
        return
    if s.auc < 0.65 or rel < 0.05 or (edit_rate is not None and s.edits_total >= 3 and edit_rate < 0.4):
        s.status = "refuted"
    elif s.n_pos >= 3 and s.n_neg >= 3 and s.auc >= 0.85 and rel >= 0.15 and (edit_rate is None or edit_rate >= 0.7):
        s.status = "supported"
    else:
        s.status = "open"
    separation = max(0.0, (s.auc - 0.5) * 2)
    size = min(1.0, (s.n_pos + s.n_neg) / 30)
    edits = edit_rate if edit_rate is not None else 0.8
    s.confidence = round(min(0.97, 0.05 + 0.92 * separation * (0.6 + 0.4 * size) * (0.5 + 0.5 * edits)), 2)
    if s.flaw:
        s.status, s.confidence = "refuted", min(s.confidence, 0.3)


MIN_NESTED = 3  # images a broader or narrower hypothesis must differ on before it can replace the choice


def best(scored: list[Scored], records: Sequence[Record] | None = None,
         coverage: dict[str, float] | None = None) -> Scored | None:
    """The conclusion rule (issue 23): which of the tested hypotheses the run concludes with.

    1. Only a *tested* hypothesis may be the conclusion (at least 2 images where it predicts firing and 2 where
       it does not): the conclusion is always one of the hypotheses the run measured.
    2. Among the tested hypotheses that their controls did not refute, **coverage first**: the one that explains
       the largest activation-weighted share of the dataset exemplars wins, at a price of
       :data:`COVERAGE_PRICE` per extra thing it names. So a narrow concept with a high AUC does not beat a
       broad one that explains most exemplars, unless the broad one fails its controls (refuted: AUC below
       0.65, no effect, edits that disagree, a 2x2 cell that contradicts it, or a member that does not fire).
    3. Near ties in coverage: supported before open, then the best separation (AUC), then variance explained
       with a price on complexity (below).
    4. A *list* (a group of nouns, an OR) stands only when every member fired on its own images
       (:func:`_check_members`, and each part of an OR alone in its 2x2 cells: :func:`_check_cells`); else it
       is refuted and a narrower hypothesis is chosen.
    5. The label's first concept is the main one: an OR puts the concept that explains more exemplars first
       (the reading's order), a conditional its focus, a group its most frequent member.
    6. Then :func:`refine` moves to a broader or narrower nested hypothesis when the images they differ on say
       so.

    Without ``coverage`` (the plan's choices before the exemplars are scored): supported before open before
    refuted; within a status the best separation (AUC).

    Near ties in AUC (a unit that fires a lot on dogs and a little on cars ranks dog images
    first either way) are settled by the variance explained, with a small price on every
    extra concept, so "dog OR car" wins only if the cars really matter.

    With ``coverage`` (hypothesis id -> share of the exemplars it explains), what drives the unit
    in natural images comes first: among the hypotheses the experiments did not refute, the one
    that explains the most exemplars wins, at a price of :data:`COVERAGE_PRICE` for every concept
    it names beyond the first (a group names each of its nouns); status, then the rule above,
    settle near ties. A concept that fires even more strongly on generated images but explains no
    exemplar joins later as an OR, when the images only it predicts fire (:func:`refine`).
    With ``records``, the choice is then refined among nested hypotheses.
    """
    if not scored:
        return None
    if coverage is not None:
        # what explains the exemplars, among the hypotheses the experiments did not refute
        tested = [s for s in scored if s.n_pos >= 2 and s.n_neg >= 2] or scored  # the conclusion was tested
        live = [s for s in tested if s.status != "refuted"] or tested

        def explains(s: Scored) -> float:
            return coverage.get(hyp_id(s.hyp), 0.0) - COVERAGE_PRICE * (s.hyp.names - 1)

        top = max(explains(s) for s in live)
        group = [s for s in live if explains(s) >= top - COVERAGE_PRICE + 1e-9]
        top_status = min(STATUS_RANK[s.status] for s in group)
        group = [s for s in group if STATUS_RANK[s.status] == top_status]
    else:
        top_status = min(STATUS_RANK[s.status] for s in scored)
        group = [s for s in scored if STATUS_RANK[s.status] == top_status]
    top_auc = max(s.auc for s in group)
    near = [s for s in group if s.auc >= top_auc - 0.03]
    choice = sorted(near, key=lambda s: (-round(s.r2 - 0.05 * s.hyp.complexity, 4), -s.auc, hyp_id(s.hyp)))[0]
    return refine(choice, scored, records) if records else choice


def refine(choice: Scored, scored: list[Scored], records: Sequence[Record]) -> Scored:
    """Move to a broader or a narrower hypothesis when the images they differ on say so.

    Separation alone is blind to a few images among many (a run holds hundreds of dog images and
    a handful of cars). So, among supported hypotheses: a *broader* one (it predicts firing on
    every image the choice does, and on at least :data:`MIN_NESTED` more) replaces the choice when
    those extra images fire like the choice's positives (dog -> dog OR car; tree objects and the
    trees of forests); a *narrower* one replaces it when the images it gives up stay low like its own
    negatives (animals -> birds; dog -> dog only when a leash is present, whose leak, the dog alone,
    may still lift the broad hypothesis's average).
    """
    fires = {id(s): [s.hyp.fires(r.features) for r in records] for s in scored}
    acts = [r.activation for r in records]
    candidates = sorted((s for s in scored if s.status == "supported" and not s.flaw),
                        key=lambda s: (-s.auc, s.hyp.complexity, hyp_id(s.hyp)))
    for _ in range(6):
        mid = choice.mean_neg + 0.5 * (choice.mean_pos - choice.mean_neg)
        mine = fires[id(choice)]
        moved = None
        for s in candidates:
            if s is choice:
                continue
            other = fires[id(s)]
            extra = [a for a, f, g in zip(acts, mine, other, strict=True) if g and not f]
            lost = [a for a, f, g in zip(acts, mine, other, strict=True) if f and not g]
            if not lost and len(extra) >= MIN_NESTED and sum(extra) / len(extra) >= mid:
                moved = s
                break
            narrow_mid = s.mean_neg + 0.5 * (s.mean_pos - s.mean_neg)
            if not extra and len(lost) >= MIN_NESTED and sum(lost) / len(lost) < narrow_mid:
                moved = s
                break
        if moved is None:
            return choice
        choice = moved
    return choice
