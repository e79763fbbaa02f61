package org.trialfhir.hapiserver;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.jpa.api.config.JpaStorageSettings;
import ca.uhn.fhir.jpa.binary.api.IBinaryStorageSvc;
import ca.uhn.fhir.jpa.binstore.MemoryBinaryStorageSvcImpl;
import ca.uhn.fhir.jpa.config.util.HapiEntityManagerFactoryUtil;
import ca.uhn.fhir.jpa.model.config.PartitionSettings;
import ca.uhn.fhir.jpa.model.config.SubscriptionSettings;
import ca.uhn.fhir.jpa.model.dialect.HapiFhirH2Dialect;
import com.zaxxer.hikari.HikariDataSource;
import jakarta.persistence.EntityManagerFactory;
import java.util.HashMap;
import java.util.Map;
import javax.sql.DataSource;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.beans.factory.config.ConfigurableListableBeanFactory;
import org.springframework.boot.orm.jpa.hibernate.SpringImplicitNamingStrategy;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.annotation.Primary;
import org.springframework.orm.jpa.JpaTransactionManager;
import org.springframework.orm.jpa.LocalContainerEntityManagerFactoryBean;
import org.springframework.transaction.annotation.EnableTransactionManagement;

/**
 * Storage side of the server: the H2 in-memory database, Hibernate, and HAPI's storage settings.
 *
 * <p>The settings are the ones a test server for trialfhir needs: client-assigned ids of any shape
 * (server-assigned ids are UUIDs so they never collide with them), no reuse of cached search
 * results (a search right after a write sees the write), $expunge enabled so a test run can
 * empty the server between modules, Bulk Data $export without job reuse (its files are Binary
 * resources in memory), Bulk Data $import, and HAPI's mass-ingestion mode with the match-URL cache
 * for faster conditional uploads.
 */
@Configuration
@EnableTransactionManagement
public class StorageConfig {

  @Bean
  public JpaStorageSettings storageSettings(
      @Value("${trialfhir.storage.mass-ingestion:true}") boolean massIngestion,
      @Value("${trialfhir.storage.match-url-cache:true}") boolean matchUrlCache,
      @Value("${trialfhir.storage.referential-integrity-on-write:true}") boolean integrityOnWrite,
      @Value("${trialfhir.storage.index-storage-optimized:false}") boolean indexStorageOptimized,
      @Value("${trialfhir.storage.search-param-identity-table:true}") boolean identityTable,
      @Value("${trialfhir.storage.meta-source:SOURCE_URI_AND_REQUEST_ID}") String metaSource,
      @Value("${trialfhir.storage.bulk-import:true}") boolean bulkImport) {
    JpaStorageSettings settings = new JpaStorageSettings();
    // Bulk-load knobs (docs/hapi.md, "Bulk loads"): each is a property, so that
    // bench/bench_hapi_tuning.py can compare them without a rebuild
    // (--trialfhir.storage.NAME=VALUE). Mass-ingestion mode and the match-URL cache halve HAPI's
    // CPU per conditional transaction entry and are on; referential integrity stays on (the tests
    // check that a dangling reference is refused); the other three measured no gain and keep
    // HAPI's defaults.
    settings.setMassIngestionMode(massIngestion);
    settings.setMatchUrlCacheEnabled(matchUrlCache);
    settings.setEnforceReferentialIntegrityOnWrite(integrityOnWrite);
    settings.setIndexStorageOptimized(indexStorageOptimized);
    settings.setWriteToSearchParamIdentityTable(identityTable);
    settings.setStoreMetaSourceInformation(
        JpaStorageSettings.StoreMetaSourceInformationEnum.valueOf(metaSource));
    settings.setEnableTaskBulkImportJobExecution(bulkImport);
    settings.setResourceClientIdStrategy(JpaStorageSettings.ClientIdStrategyEnum.ANY);
    settings.setResourceServerIdStrategy(JpaStorageSettings.IdStrategyEnum.UUID);
    settings.setReuseCachedSearchResultsForMillis(null);
    settings.setExpungeEnabled(true);
    settings.setAllowMultipleDelete(true);
    settings.setDeleteExpungeEnabled(true);
    settings.setAllowContainsSearches(true);
    settings.setFetchSizeDefaultMaximum(RestServerConfig.MAXIMUM_PAGE_SIZE);
    // $export: run it, and never answer a kick-off with an earlier job's files (data change
    // between two exports of a test run).
    settings.setEnableTaskBulkExportJobExecution(true);
    settings.setEnableBulkExportJobReuse(false);
    // An export file is filled by synchronous searches on its resources' ids, limited to
    // FetchSizeDefaultMaximum results; one that reaches the limit has no known size and fails the
    // job (HAPI-0464). HAPI's 1000 per file broke every type with 500 resources or more.
    settings.setBulkExportFileMaximumCapacity(RestServerConfig.MAXIMUM_PAGE_SIZE - 1);
    return settings;
  }

  @Bean
  public PartitionSettings partitionSettings() {
    return new PartitionSettings();
  }

  @Bean
  public SubscriptionSettings subscriptionSettings() {
    return new SubscriptionSettings();
  }

  @Bean
  public IBinaryStorageSvc binaryStorageSvc() {
    return new MemoryBinaryStorageSvcImpl();
  }

  @Bean(destroyMethod = "close")
  public DataSource dataSource(
      @Value("${trialfhir.h2.url:jdbc:h2:mem:trialfhir;DB_CLOSE_DELAY=-1}") String url) {
    HikariDataSource dataSource = new HikariDataSource();
    dataSource.setDriverClassName("org.h2.Driver");
    dataSource.setJdbcUrl(url);
    dataSource.setUsername("sa");
    dataSource.setPassword("");
    dataSource.setMaximumPoolSize(20);
    return dataSource;
  }

  @Bean
  @Primary
  public LocalContainerEntityManagerFactoryBean entityManagerFactory(
      ConfigurableListableBeanFactory beanFactory,
      FhirContext fhirContext,
      JpaStorageSettings storageSettings,
      DataSource dataSource,
      @Value("${trialfhir.hibernate.batch-size:20}") int batchSize,
      @Value("${trialfhir.hibernate.order-inserts:false}") boolean orderInserts) {
    LocalContainerEntityManagerFactoryBean factory =
        HapiEntityManagerFactoryUtil.newEntityManagerFactory(
            beanFactory, fhirContext, storageSettings);
    factory.setPersistenceUnitName("HAPI_PU");
    factory.setDataSource(dataSource);
    factory.setJpaPropertyMap(hibernateProperties(batchSize, orderInserts));
    return factory;
  }

  private static Map<String, Object> hibernateProperties(int batchSize, boolean orderInserts) {
    Map<String, Object> properties = new HashMap<>();
    properties.put("hibernate.dialect", HapiFhirH2Dialect.class.getName());
    properties.put("hibernate.hbm2ddl.auto", "update");
    properties.put("hibernate.search.enabled", "false");
    properties.put("hibernate.format_sql", "false");
    properties.put("hibernate.show_sql", "false");
    properties.put("hibernate.jdbc.batch_size", Integer.toString(batchSize));
    properties.put("hibernate.order_inserts", Boolean.toString(orderInserts));
    properties.put("hibernate.order_updates", Boolean.toString(orderInserts));
    properties.put("hibernate.cache.use_query_cache", "false");
    properties.put("hibernate.cache.use_second_level_cache", "false");
    properties.put("hibernate.cache.use_structured_entries", "false");
    properties.put("hibernate.cache.use_minimal_puts", "false");
    properties.put("hibernate.archive.scanner", "org.hibernate.boot.archive.scan.internal.DisabledScanner");
    properties.put(
        "hibernate.implicit_naming_strategy", SpringImplicitNamingStrategy.class.getName());
    properties.put(
        "hibernate.physical_naming_strategy",
        "org.hibernate.boot.model.naming.CamelCaseToUnderscoresNamingStrategy");
    return properties;
  }

  @Bean
  @Primary
  public JpaTransactionManager transactionManager(EntityManagerFactory entityManagerFactory) {
    JpaTransactionManager manager = new JpaTransactionManager();
    manager.setEntityManagerFactory(entityManagerFactory);
    return manager;
  }
}
