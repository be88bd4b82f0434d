from ._base import AbstractCell as AbstractCell, AbstractStatelessCell as AbstractStatelessCell
from ._feedforward import LinearCell as LinearCell, MLPCell as MLPCell
from ._ode import ODECell as ODECell
from ._recurrent import GRUCell as GRUCell, LSTMCell as LSTMCell
