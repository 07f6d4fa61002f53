"""The offline scientist: a deterministic, rule-based experimenter for the embedded world.

It is AIM's baseline and what ``aim demo`` runs: no VLM, no network, the same run for the
same inputs. It uses exactly the tools any agent uses, in tool-calling mode (tool calls
chained with ``$k.field`` references) or in code mode (a ``run_experiment(system, tools)``
source run in the sandbox).

Strategy
--------
The scientist holds no list of answers: every group of nouns, partner and condition it tests comes
from what it may see, namely the blind describer's words for the exemplars, the world vocabulary as
a whole (its objects, categories, colours, textures, backgrounds and their parts) and its own
measurements.

1. **Read.** Parse the blind describer's exemplar descriptions with the world vocabulary
   into concepts: objects, colours, textures, backgrounds, background regions (every part of
   a scene drawn from several parts: the sea and the sand of a beach, the trees of a forest;
   parts several scenes share also under their common name: sky, grass, water), background
   parts drawn as objects (the trees of a forest: tree) and, when the exemplars show several
   different nouns, their vocabulary category (animals) and the group of the nouns seen. A
   highlight made of one part of its scene, a part that fills far less of the scene, names that
   region and not the background (whole images cannot tell the two apart; the highlight can).
   Score each concept by how often it occurs across the top exemplars, weighting every exemplar
   by its activation.
2. **Hypothesize.** A *single* hypothesis for every frequent concept; an *OR* hypothesis for
   two concepts that each explain different exemplars; a *conditional* hypothesis "A only
   when B" for a concept A whose exemplars almost always also contain B.
3. **Experiment**, in fixed phases, each one experiment through the tools, each designed only
   from the observations before it (:mod:`.plan`):

   - ``screen``: each candidate concept alone in several contexts plus neutral controls;
   - ``patterns`` (when a texture or the pattern is a candidate): every texture on each of several nouns and the
     same nouns plain, so a pattern unit (any texture, any object) is told from an object unit;
   - ``pairs``: for OR and conditional candidates, the 2x2 design A+B, A only, B only,
     neither, in several contexts;
   - ``survey``: the whole vocabulary, one concept per image (every object alone, every
     background, colour and texture): the unit's measured set of objects around the leading
     concept (its *group*: the birds among the animals) and the concepts that explain strong
     images the leading concept leaves out (*partners*, with those of unexplained exemplars);
   - ``coverage``: each partner alone in several contexts (is the unit polysemantic?);
   - ``context``: the leading concept next to every companion the world offers (each object,
     background, colour, texture): what switches a response on that the exemplars may show
     only as a weak leak (a conditional unit);
   - ``confirm``: the 2x2 design for the companions the sweep found;
   - ``edits``: causal pairs for the leading hypothesis (``edit_images``);
   - ``critic``: then what the critic's last report asks for, at most :data:`MAX_CRITIC_ROUNDS` times.

4. **Measure.** Every image is known by the features of its prompt (or of the edit applied
   to its original), so each hypothesis is a predicate on features. It is scored by the
   rank separation (AUC) of activations where it predicts firing against where it does
   not (on this run's generated images, never the dataset), by the effect relative to the
   run's largest activation, by its consistency across backgrounds and by the edit pairs; an
   OR or conditional hypothesis must also fit its 2x2 cells. Statuses and confidences are
   recomputed from all evidence every round, so the scientist holds no hidden state.
5. **Conclude** by the rule written in :func:`.scoring.best` (only tested hypotheses; exemplar coverage first
   among those their controls did not refute; a list only when every member fired on its own images), with a
   confidence capped when the run was forced, an evidence objection is open, or few exemplars are explained
   (:func:`.scientist.calibrated`). Within it: the supported hypothesis that separates best; near ties go to
   the one explaining more variance, with a small price on every extra concept; then, among nested
   hypotheses, a broader one wins when the images only it predicts fire (dog -> dog OR car),
   a narrower one when the images it gives up stay low (animals -> the birds). MAIA's format,
   with the numbers.

When the descriptions hold no world vocabulary (a real model described by a VLM), it says
so and concludes without pretending: such units need a VLM scientist.

Modules
-------
- :mod:`.concepts`: the world concepts and the vocabulary tables that name them;
- :mod:`.parsing`: describer text and prompts -> parsed scenes (objects, backgrounds, regions);
- :mod:`.scene_edits`: edit instructions applied to parsed scenes;
- :mod:`.evidence`: observations -> records (what each image shows, its activation);
- :mod:`.hypotheses`: hypotheses as predicates on image features, and how they read;
- :mod:`.reading`: steps 1 and 2 (exemplars, or a survey -> ranked concepts -> hypotheses);
- :mod:`.scenes`: the image that shows exactly a set of concepts, in a neutral context;
- :mod:`.experiment`: one experiment as tool calls or ``run_experiment`` code;
- :mod:`.design`: step 3, the experiment of each phase;
- :mod:`.search`: reading the survey and the context sweep (groups, partners, conditions);
- :mod:`.scoring`: step 4, scoring hypotheses on the evidence;
- :mod:`.plan`: the state derived from the view, and which experiment comes next;
- :mod:`.scientist`: :class:`OfflineScientist` (propose, conclude; step 5) and what it writes;
- :mod:`.tasks`: :class:`~.tasks.OfflineTaskScientist`, the answers to model-level task questions (hook
  ``aim_task_scientists``), from
- :mod:`.spurious`: is a unit SELECTIVE or SPURIOUS across the training environments (MAIA's question), and
- :mod:`.bias`: where is a class under-recognised (MAIA's bias question).

The package exports the scientist; its parts (designs, tunables, parsing) are imported from their modules.
"""

from aim_world.scientist.scientist import (
    NO_EXEMPLARS_NOTE,
    NON_WORLD_NOTE,
    SILENT_NOTE,
    OfflineScientist,
    cannot_start,
)

__all__ = ["NON_WORLD_NOTE", "NO_EXEMPLARS_NOTE", "SILENT_NOTE", "OfflineScientist", "cannot_start"]
