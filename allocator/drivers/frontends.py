"""The DVB frontend the au0828 boards attach (au0828-dvb.c: ``dvb_attach(au8522_attach, ...)``,
then ``dvb_attach(xc5000_attach, ...)``): what its ``dvb_frontend_ops`` tell userspace.

* drivers/media/dvb-frontends/au8522_dig.c ``au8522_ops``: "Auvitek AU8522 QAM/8VSB
  Frontend", delivery systems ATSC then DVB-C annex B, 54-858 MHz in 62.5 kHz steps, caps
  QAM_64 | QAM_256 | 8VSB;
* drivers/media/tuners/xc5000.c ``xc5000_tuner_ops.info``: "Xceive XC5000", 1-1023 MHz in
  50 kHz steps.
"""

from __future__ import annotations

from ..subsys.dvb import FE_CAN_8VSB, FE_CAN_QAM_64, FE_CAN_QAM_256, SYS_ATSC, SYS_DVBC_ANNEX_B, DvbFrontendOps

MHZ, KHZ = 1_000_000, 1000

#: au8522_attach() with xc5000_attach() on it: the HVR-950Q's and HVR-850's frontend
AU8522_XC5000 = DvbFrontendOps(
    name="Auvitek AU8522 QAM/8VSB Frontend",
    delsys=(SYS_ATSC, SYS_DVBC_ANNEX_B),
    frequency_min_hz=54 * MHZ,
    frequency_max_hz=858 * MHZ,
    frequency_stepsize_hz=62500,
    caps=FE_CAN_QAM_64 | FE_CAN_QAM_256 | FE_CAN_8VSB,
    tuner_min_hz=1 * MHZ,
    tuner_max_hz=1023 * MHZ,
    tuner_step_hz=50 * KHZ,
)
