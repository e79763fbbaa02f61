package org.trialfhir.hapiserver;

import ca.uhn.fhir.batch2.api.IJobMaintenanceService;
import ca.uhn.fhir.batch2.jobs.export.BulkDataExportProvider;
import ca.uhn.fhir.batch2.jobs.imprt.BulkDataImportProvider;
import ca.uhn.fhir.batch2.maintenance.JobMaintenanceServiceImpl;
import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.jpa.api.config.JpaStorageSettings;
import ca.uhn.fhir.jpa.api.dao.IFhirSystemDao;
import ca.uhn.fhir.jpa.provider.IJpaSystemProvider;
import ca.uhn.fhir.jpa.provider.JpaCapabilityStatementProvider;
import ca.uhn.fhir.jpa.provider.ValueSetOperationProvider;
import ca.uhn.fhir.jpa.search.DatabaseBackedPagingProvider;
import ca.uhn.fhir.rest.api.EncodingEnum;
import ca.uhn.fhir.rest.server.IncomingRequestAddressStrategy;
import ca.uhn.fhir.rest.server.RestfulServer;
import ca.uhn.fhir.rest.server.provider.ResourceProviderFactory;
import ca.uhn.fhir.rest.server.util.ISearchParamRegistry;
import org.springframework.boot.web.servlet.ServletRegistrationBean;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

/**
 * The REST side: HAPI's {@link RestfulServer} with the generated R4 resource providers, the system
 * provider (transaction/batch, $expunge, _history), $expand/$validate-code, Bulk Data $export
 * (system, Patient and Group level, run by batch2), and the JPA CapabilityStatement, mounted on
 * /fhir/*.
 */
@Configuration
public class RestServerConfig {

  /** Page size when a search sends no _count. */
  static final int DEFAULT_PAGE_SIZE = 20;

  /** Largest _count the server honours; larger requests are cut down to this. */
  static final int MAXIMUM_PAGE_SIZE = 500;

  /**
   * How often batch2 advances its jobs (HAPI's default is once a minute, so a small $export would
   * wait minutes between its steps).
   */
  static final long JOB_MAINTENANCE_MILLIS = 2000;

  @Bean
  public RestfulServer restfulServer(
      FhirContext fhirContext,
      ResourceProviderFactory resourceProviderFactory,
      IJpaSystemProvider systemProvider,
      ValueSetOperationProvider valueSetOperationProvider,
      IFhirSystemDao<?, ?> systemDao,
      JpaStorageSettings storageSettings,
      ISearchParamRegistry searchParamRegistry,
      IValidationSupport validationSupport,
      DatabaseBackedPagingProvider pagingProvider,
      BulkDataExportProvider bulkDataExportProvider,
      BulkDataImportProvider bulkDataImportProvider,
      IJobMaintenanceService jobMaintenanceService) {
    RestfulServer server = new RestfulServer(fhirContext);
    server.registerProviders(resourceProviderFactory.createProviders());
    server.registerProvider(systemProvider);
    server.registerProvider(valueSetOperationProvider);
    server.registerProvider(bulkDataExportProvider);
    server.registerProvider(bulkDataImportProvider);
    if (jobMaintenanceService instanceof JobMaintenanceServiceImpl maintenance) {
      maintenance.setScheduledJobFrequencyMillis(JOB_MAINTENANCE_MILLIS);
    }

    pagingProvider.setDefaultPageSize(DEFAULT_PAGE_SIZE);
    pagingProvider.setMaximumPageSize(MAXIMUM_PAGE_SIZE);
    server.setPagingProvider(pagingProvider);

    server.setServerConformanceProvider(
        new JpaCapabilityStatementProvider(
            server, systemDao, storageSettings, searchParamRegistry, validationSupport));
    server.setDefaultResponseEncoding(EncodingEnum.JSON);
    server.setDefaultPrettyPrint(false);
    server.setServerAddressStrategy(new IncomingRequestAddressStrategy());
    return server;
  }

  @Bean
  public ServletRegistrationBean<RestfulServer> fhirServletRegistration(RestfulServer server) {
    ServletRegistrationBean<RestfulServer> registration =
        new ServletRegistrationBean<>(server, "/fhir/*");
    registration.setName("fhir");
    registration.setLoadOnStartup(1);
    return registration;
  }
}
