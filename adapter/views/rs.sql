-- RS: the SQL step over the views sdtm_rs
SELECT
  element_at(split(KEY, '/'), 1) AS STUDYID,
  'RS' AS DOMAIN,
  element_at(split(KEY, '/'), 2) AS USUBJID,
  element_at(split(KEY, '/'), 3) AS RSSEQ,
  RSTESTCD,
  RSTEST,
  RSCAT,
  RSORRES,
  RSSTRESC,
  RSEVAL,
  RSDTC,
  CAST(VISITNUM AS STRING) AS VISITNUM,
  VISIT,
  EPOCH
FROM sdtm_rs
ORDER BY USUBJID, try_cast(RSSEQ AS DECIMAL(38, 10)), RSSEQ
