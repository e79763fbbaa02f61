-- MH: the SQL step over the views sdtm_mh
SELECT
  element_at(split(KEY, '/'), 1) AS STUDYID,
  'MH' AS DOMAIN,
  element_at(split(KEY, '/'), 2) AS USUBJID,
  element_at(split(KEY, '/'), 3) AS MHSEQ,
  MHTERM,
  MHDECOD,
  MHCAT,
  MHSCAT,
  MHBODSYS,
  MHPRESP,
  MHOCCUR,
  MHDTC,
  MHSTDTC,
  MHENDTC,
  MHENRF,
  EPOCH
FROM sdtm_mh
ORDER BY USUBJID, try_cast(MHSEQ AS DECIMAL(38, 10)), MHSEQ
