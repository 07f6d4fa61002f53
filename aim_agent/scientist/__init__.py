"""The concept scientist: a rule-based experimenter for any model whose images a blind describer can name.

The world plugin's offline scientist reasons over the world's scene vocabulary and draws its own
images. This one needs only what every provider can give: a blind describer's words for images and a
dataset to search. It is the offline scientist for real models on photos (EfficientNet on ImageNet
photos, described by a tagger built on a *different* model), and runs on world units too.

1. **Read** (:mod:`.reading`): the describer's terms for the top exemplars, weighted by activation,
   rank the candidate concepts.
2. **Experiment** (:mod:`.experiments`): for each candidate, dataset images the describer says show it
   (never the exemplars themselves, never by file name or label) against controls that show none of
   the candidates; then the leaders again on fresh images; then, if the critic objects, more.
3. **Score** (:mod:`.evidence`): each concept's rank separation (AUC) and means on the measured images.
4. **Conclude** (:mod:`.rule`): one stated rule — exemplar coverage and controlled effect both count,
   nesting decides between a concept and a broader or narrower one, and a second concept joins the
   label only when it fired alone.
"""

from aim_agent.scientist.scientist import ConceptScientist

__all__ = ["ConceptScientist"]
