from . import register
from ._crossing import CrossingTrigger


@register
class ScoreCrossedUp(CrossingTrigger):
    key = "score_crossed_up"
    label = "Score Crossed Up"
    position = 20
    up = True
    example = {"threshold": 50}
