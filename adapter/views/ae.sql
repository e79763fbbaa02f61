-- AE: the SQL step over the views sdtm_ae
SELECT
  element_at(split(KEY, '/'), 1) AS STUDYID,
  'AE' AS DOMAIN,
  element_at(split(KEY, '/'), 2) AS USUBJID,
  element_at(split(KEY, '/'), 3) AS AESEQ,
  AESPID,
  AETERM,
  AEDECOD,
  AECAT,
  AEBODSYS,
  AESER,
  AESEV,
  AEREL,
  AEACN,
  AEOUT,
  AESCONG,
  AESDISAB,
  AESDTH,
  AESHOSP,
  AESLIFE,
  AESMIE,
  AEDTC,
  AESTDTC,
  AEENDTC,
  EPOCH
FROM sdtm_ae
ORDER BY USUBJID, try_cast(AESEQ AS DECIMAL(38, 10)), AESEQ
