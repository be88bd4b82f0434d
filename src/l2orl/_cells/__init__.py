from ._base import AbstractCell as AbstractCell
from ._base import AbstractStatelessCell as AbstractStatelessCell
from ._feedforward import LinearCell as LinearCell
from ._feedforward import MLPCell as MLPCell
from ._ode import ODECell as ODECell
from ._recurrent import GRUCell as GRUCell
from ._recurrent import LSTMCell as LSTMCell
