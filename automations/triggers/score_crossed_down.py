from . import register
from ._crossing import CrossingTrigger


@register
class ScoreCrossedDown(CrossingTrigger):
    key = "score_crossed_down"
    label = "Score Crossed Down"
    position = 30
    up = False
    example = {"threshold": 20}
