-- CM: the SQL step over the views sdtm_cm
SELECT
  element_at(split(KEY, '/'), 1) AS STUDYID,
  'CM' AS DOMAIN,
  element_at(split(KEY, '/'), 2) AS USUBJID,
  element_at(split(KEY, '/'), 3) AS CMSEQ,
  CMTRT,
  CMDECOD,
  CMCAT,
  CMINDC,
  coalesce(CMDOSE_TEXT, CAST(CMDOSE_Q AS STRING)) AS CMDOSE,
  coalesce(CMDOSU_TEXT, CMDOSU_Q) AS CMDOSU,
  CMDOSFRM,
  CMDOSFRQ,
  CMROUTE,
  coalesce(START, AT) AS CMSTDTC,
  coalesce(END, AT) AS CMENDTC,
  CAST(VISITNUM AS STRING) AS VISITNUM,
  VISIT,
  EPOCH
FROM sdtm_cm
ORDER BY USUBJID, try_cast(CMSEQ AS DECIMAL(38, 10)), CMSEQ
