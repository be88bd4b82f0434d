from ._adafactor import AdafacFeatures as AdafacFeatures
from ._adafactor import AdafacState as AdafacState
from ._base import (
    AbstractElementwisePreprocessor as AbstractElementwisePreprocessor,
)
from ._base import (
    AbstractPreprocessor as AbstractPreprocessor,
)
from ._concatenate import Concatenate as Concatenate
from ._elementwise import (
    Clip as Clip,
)
from ._elementwise import (
    Identity as Identity,
)
from ._elementwise import (
    ParamValue as ParamValue,
)
from ._elementwise import (
    SignLog as SignLog,
)
from ._elementwise import (
    Square as Square,
)
from ._momentum import Momentum as Momentum
from ._normalize import RMSNormalize as RMSNormalize
from ._time import TimeFeatures as TimeFeatures
