from ._adafactor import AdafacFeatures as AdafacFeatures, AdafacState as AdafacState
from ._base import (
    AbstractElementwisePreprocessor as AbstractElementwisePreprocessor,
    AbstractPreprocessor as AbstractPreprocessor,
)
from ._concatenate import Concatenate as Concatenate
from ._context_features import ContextFeatures as ContextFeatures
from ._elementwise import (
    Clip as Clip,
    Identity as Identity,
    ParamValue as ParamValue,
    SignLog as SignLog,
    Square as Square,
)
from ._find import find_part as find_part
from ._momentum import Momentum as Momentum
from ._normalize import RMSNormalize as RMSNormalize
from ._scale_free import ScaleFree as ScaleFree, ScaleFreeState as ScaleFreeState
from ._tensor import TensorFeatures as TensorFeatures
from ._time import TimeFeatures as TimeFeatures
