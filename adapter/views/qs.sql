-- QS: the SQL step over the views sdtm_qs
SELECT
  element_at(split(KEY, '/'), 1) AS STUDYID,
  'QS' AS DOMAIN,
  element_at(split(KEY, '/'), 2) AS USUBJID,
  element_at(split(KEY, '/'), 3) AS QSSEQ,
  QSTESTCD,
  QSTEST,
  QSCAT,
  QSSCAT,
  QSORRES,
  QSSTRESC,
  coalesce(QSSTRESN_TEXT, CAST(QSSTRESN AS STRING)) AS QSSTRESN,
  QSSTAT,
  QSREASND,
  QSBLFL,
  QSEVAL,
  QSDTC,
  CAST(VISITNUM AS STRING) AS VISITNUM,
  VISIT,
  EPOCH
FROM sdtm_qs
ORDER BY USUBJID, try_cast(QSSEQ AS DECIMAL(38, 10)), QSSEQ
